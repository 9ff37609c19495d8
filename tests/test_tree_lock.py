"""Two steps at once on one tree: the second refuses with one line naming the first (a lock per tree,
held for the run); training and drawing share the tree with one another, never with a step that
rewrites or deletes. A file that vanishes while a step runs is named in one line, never a traceback."""
import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

import create_fmrgbdata
import delete_allmp4
import delete_not_resized
import resize_video
from conftest import REPORT, ROOT, make_video, run_script, write_dataset
from fmrgb import files, treelock
from fmrgb.prepare import convert

WRITERS = [("create_fmrgbdata.py",), ("create_fmrgbdata.py", "--scan"), ("resize_video.py",),
           ("delete_not_resized.py",), ("delete_allmp4.py",)]


@pytest.mark.parametrize("step", WRITERS, ids=" ".join)
def test_a_step_refuses_a_tree_another_step_holds(tmp_path, step):
    video = make_video(tmp_path / "a.mp4", seconds=0.3, size=(64, 48))
    before = sorted(tmp_path.iterdir())
    with treelock.hold(tmp_path, shared=True):  # even a reader (a training run) keeps writers out
        r = run_script(*step, "--target", tmp_path)
    assert r.returncode == 2 and sorted(tmp_path.iterdir()) == before and video.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {tmp_path}: another step is working on this folder (pid {os.getpid()}: "), r.stderr
    assert lines[0].endswith("): run this one when it has finished")
    r = run_script(*step, "--target", tmp_path)  # and once it has
    assert r.returncode == 0, r.stderr


def test_a_delete_step_started_during_a_conversion_refuses_and_deletes_nothing(tmp_path):
    # long enough that the conversion outlasts the delete step's start (its Python and torch imports)
    videos = [make_video(tmp_path / f"v{i}.mp4", seconds=4, size=(640, 480)) for i in range(8)]
    proc = subprocess.Popen([sys.executable, str(ROOT / "create_fmrgbdata.py"), "--target", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.monotonic() + 60
        while not list(tmp_path.glob("*.pt")) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.01)  # the first record is written: a delete could now take its video
        r = run_script("delete_allmp4.py", "--target", tmp_path, "--all")
        running = proc.poll() is None
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert running, "the conversion ended before the delete step started"
    assert r.returncode == 2 and f"(pid {proc.pid}: create_fmrgbdata.py)" in r.stderr, r.stderr
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert all(v.exists() for v in videos)


def test_readers_share_the_tree_and_a_writer_waits_for_none_of_them(tmp_path):
    write_dataset(tmp_path, per_class=1, T=4, H=8, W=8)
    with treelock.hold(tmp_path, shared=True):
        r = run_script("visualize.py", "--target", tmp_path, "--out", tmp_path / "pictures")
        assert r.returncode == 0, r.stderr
    with treelock.hold(tmp_path):
        r = run_script("visualize.py", "--target", tmp_path, "--out", tmp_path / "pictures")
        assert r.returncode == 2 and "another step is working on this folder" in r.stderr


# ----------------------------------------------------------------------------- a file vanishes mid-run

STEPS = {"convert": (create_fmrgbdata, []), "scan": (create_fmrgbdata, ["--scan"]),
         "resize": (resize_video, []), "delete_not_resized": (delete_not_resized, []),
         "delete_allmp4": (delete_allmp4, [])}


@pytest.mark.parametrize("name", STEPS)
def test_a_video_that_vanishes_mid_run_is_named_in_one_line(tmp_path, monkeypatch, capsys, name):
    script, flags = STEPS[name]
    for n in "abc":
        make_video(tmp_path / f"{n}.mp4", seconds=0.3, size=(64, 48))
    convert.convert_tree(tmp_path, report=REPORT)
    capsys.readouterr()
    real = files.find_videos

    def listed_then_removed(root, **kw):  # another program removes b.mp4 just after the step listed it
        found = real(root, **kw)
        (tmp_path / "b.mp4").unlink(missing_ok=True)
        return found

    monkeypatch.setattr(files, "find_videos", listed_then_removed)
    args = script.get_args_parser().parse_args(["--target", str(tmp_path), *flags])
    assert isinstance(args, argparse.Namespace)
    script.main(args)  # no exception
    out, err = capsys.readouterr()
    lines = [ln for ln in (out + err).splitlines() if "b.mp4" in ln]
    assert len(lines) == 1, out + err
    if name == "delete_allmp4":  # the delete steps judge each file again right before its delete
        assert lines[0].startswith("gone ") and "removed by something else" in lines[0], out + err
    elif name != "delete_not_resized":  # there: "kept b.mp4: no resized copy", true before and after
        assert "No such file or directory" in lines[0], out + err


def test_a_folder_the_file_system_cannot_lock_is_named_and_the_step_goes_on(tmp_path, monkeypatch, capsys):
    # NFS refuses flock on a folder opened to read (EBADF): the step says so and works, no traceback
    make_video(tmp_path / "a.mp4", seconds=0.3, size=(64, 48))

    def refuse(fd, op):
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(treelock.fcntl, "flock", refuse)
    assert create_fmrgbdata.main(create_fmrgbdata.get_args_parser().parse_args(["--target", str(tmp_path)])) == 0
    assert (tmp_path / "a.mp4.pt").exists()
    assert f"warning: {tmp_path}: cannot be locked here (Bad file descriptor)" in capsys.readouterr().err
