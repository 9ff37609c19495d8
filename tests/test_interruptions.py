"""Interruptions: SIGKILL, Ctrl-C, two runs at once and a full disk leave nothing a later step
takes as finished, no temporary file, and the old files whole."""
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import create_fmrgbdata
from conftest import REPORT, ROOT, digest, error_lines, load_pt, make_video, part_files, tiny
from fmrgb import files


# ----------------------------------------------------------------------------- signals
from fmrgb.prepare import convert, deletion, ffmpeg, record, resized


# ----------------------------------------------------------------------------- signals

def start(script, *args):
    return subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(proc, target, pred, timeout=60):
    """Poll every millisecond until pred(names) holds; True if it did while proc ran. (A loop without
    a sleep would take a core from the very process it watches.)"""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred(os.listdir(target)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def is_part(names):
    return any(n.startswith(".") and n.endswith(".part") for n in names)


def finish(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"did not stop within {timeout} s")
    return out, err


def big_clips(target, n=4, seconds=1.0):
    return [make_video(target / f"v{i}.mp4", seconds=seconds, size=(320, 240)) for i in range(n)]


def test_sigkill_while_converting_leaves_nothing_a_later_step_takes_as_finished(tmp_path):
    videos = big_clips(tmp_path)
    digests = {v: digest(v) for v in videos}
    proc = start("create_fmrgbdata.py", "--target", tmp_path)
    saw_part = wait_for(proc, tmp_path, is_part)
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc, 10)
    assert saw_part, "the run ended before a temp file was seen"
    assert proc.returncode == -signal.SIGKILL
    assert files.find_videos(tmp_path) == videos  # temp files are never taken for videos
    for pt in files.find_files(tmp_path, {".pt"}):  # what the training step reads is all finished
        rec = load_pt(pt)
        assert rec["frames"].shape[0] in (rec["source_frames"], 30)
    for v in videos:
        assert record.conversion_problem(v) == (None if v.with_name(v.name + ".pt").exists()
                                                       else "no .pt file")
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed
    for v in videos:
        assert load_pt(v.with_name(v.name + ".pt"))["frames"].shape == (30, 240, 320, 5)
        assert digest(v) == digests[v]


def test_sigkill_while_resizing_leaves_no_resized_copy_that_passes_for_complete(tmp_path):
    videos = big_clips(tmp_path, seconds=2)
    digests = {v: digest(v) for v in videos}
    proc = start("resize_video.py", "--target", tmp_path, "--mag", "1")
    saw_part = wait_for(proc, tmp_path, is_part)
    time.sleep(0.05)  # let ffmpeg write into it
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc, 10)
    assert saw_part and proc.returncode == -signal.SIGKILL
    assert files.find_videos(tmp_path) == sorted(videos + list(tmp_path.glob("resized_*.mp4")))
    for copy in tmp_path.glob("resized_*.mp4"):
        assert resized.is_complete_copy(tmp_path / copy.name[len("resized_"):], copy, decode=True)[0]
    plan = {d.path: d.reason for d in deletion.originals_with_copies(tmp_path, report=REPORT)}
    assert {v for v, why in plan.items() if why is None} == {
        tmp_path / c.name[len("resized_"):] for c in tmp_path.glob("resized_*.mp4")}
    counts, failed = resized.resize_videos(tmp_path, mag=1, report=REPORT)
    assert not failed and counts.get("resized", 0) >= 1
    assert all(d.reason is None for d in deletion.originals_with_copies(tmp_path, report=REPORT))
    assert all(digest(v) == digests[v] for v in videos)


@pytest.mark.parametrize("script,args", [("create_fmrgbdata.py", []), ("create_fmrgbdata.py", ["--jobs", "2"]),
                                         ("resize_video.py", ["--mag", "1"])])
def test_ctrl_c_stops_promptly_with_130_and_removes_its_temp_files(tmp_path, script, args):
    big_clips(tmp_path, seconds=2 if script == "resize_video.py" else 1)
    proc = start(script, "--target", tmp_path, *args)
    # interrupt mid-work: once ffmpeg is writing a resized copy, or once a first .pt is finished
    # (the microseconds between creating a temp file and using it are tested in-process below)
    writing = (lambda names: any(n.endswith(".pt") for n in names)) if script == "create_fmrgbdata.py" else \
        (lambda names: any(n.endswith(".part") and (tmp_path / n).stat().st_size > 0 for n in names if n[0] == "."))
    assert wait_for(proc, tmp_path, writing), "the run ended before writing anything"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    t = time.monotonic()
    _, err = finish(proc, 15)
    assert proc.returncode == 130, err
    assert time.monotonic() - t < 10
    assert "Traceback" not in err and "interrupted" in err
    time.sleep(0.2)  # any straggler child would show up now
    assert not part_files(tmp_path)
    for pt in tmp_path.glob("*.pt"):
        assert load_pt(pt)["frames"].dtype == torch.uint8
    for copy in tmp_path.glob("resized_*.mp4"):
        assert resized.is_complete_copy(tmp_path / copy.name[len("resized_"):], copy, decode=True)[0]


def test_ctrl_c_right_after_the_temp_file_is_created_still_removes_it(tmp_path, monkeypatch):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "chmod", interrupted)  # the first step after mkstemp
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_output(tmp_path / "out.pt") as tmp:
            tmp.write_bytes(b"data")
    monkeypatch.undo()
    assert not list(tmp_path.iterdir())


def test_two_conversions_of_one_folder_at_once_one_refuses_and_the_files_are_a_single_runs(tmp_path):
    one, two = tmp_path / "together", tmp_path / "alone"
    for i, seconds in enumerate((0.5, 1.0, 1.5)):
        tiny(one / f"v{i}.mp4", seconds=seconds)
    shutil.copytree(one, two)
    # the single run is a subprocess too, so all three use the same code from disk
    procs = [start("create_fmrgbdata.py", "--target", folder) for folder in (one, one, two)]
    results = [finish(p, 120) for p in procs]
    # the second to reach the folder's lock refuses (unless the first had already finished)
    assert sorted(p.returncode for p in procs[:2]) in ([0, 0], [0, 2]) and procs[2].returncode == 0, results
    for k, p in enumerate(procs[:2]):
        if p.returncode == 2:
            assert results[k][1].strip().splitlines() == [
                f"error: {one}: another step is working on this folder (pid {procs[1 - k].pid}: "
                "create_fmrgbdata.py): run this one when it has finished"]
    assert not part_files(one)
    for i in range(3):
        got, want = load_pt(one / f"v{i}.mp4.pt"), load_pt(two / f"v{i}.mp4.pt")
        assert got.keys() == want.keys()
        assert torch.equal(got.pop("frames"), want.pop("frames")) and got == want


# ----------------------------------------------------------------------------- disk full

def test_disk_full_names_the_file_leaves_no_partial_and_the_rest_converts(tmp_path, monkeypatch, capsys):
    videos = {n: tiny(tmp_path / f"{n}.mp4") for n in "abc"}
    digests = {n: digest(v) for n, v in videos.items()}
    real_save = torch.save

    def save(obj, f, *a, **kw):
        if Path(f.name).name.startswith(".b.mp4.pt."):
            f.write(b"PK\x03\x04 half a zip")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    args = create_fmrgbdata.get_args_parser().parse_args(["--target", str(tmp_path)])
    assert create_fmrgbdata.main(args) == 1
    out, err = capsys.readouterr()
    assert error_lines(err) == [f"error: {videos['b']}: [Errno 28] No space left on device: '{videos['b']}.pt'"]
    assert "converted 2," in out and "failed 1" in out
    assert not (tmp_path / "b.mp4.pt").exists() and not part_files(tmp_path)
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape[0] == load_pt(tmp_path / "c.mp4.pt")["frames"].shape[0] == 15
    assert {n: digest(v) for n, v in videos.items()} == digests


def test_disk_full_while_stretching_keeps_the_old_file_whole_and_a_rerun_finishes(tmp_path, monkeypatch, capsys):
    tiny(tmp_path / "short.mp4", seconds=0.5)
    convert.convert_tree(tmp_path, report=REPORT)
    old = (tmp_path / "short.mp4.pt").read_bytes()
    tiny(tmp_path / "long.mp4", seconds=1)
    real_save = torch.save

    def save(obj, f, *a, **kw):
        if Path(f.name).name.startswith(".short.mp4.pt."):
            f.write(b"PK")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", save)
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert failed == [tmp_path / "short.mp4"] and counts["converted"] == 1
    assert "short.mp4: [Errno 28] No space left on device" in capsys.readouterr().err
    assert (tmp_path / "short.mp4.pt").read_bytes() == old and not part_files(tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert not failed and counts.get("aligned") == 1
    assert load_pt(tmp_path / "short.mp4.pt")["frames"].shape[0] == 30


def test_disk_full_while_resizing_leaves_no_resized_copy(tmp_path, monkeypatch, capsys):
    videos = {n: tiny(tmp_path / f"{n}.mp4") for n in "ab"}
    real = ffmpeg.run_ffmpeg

    def run_ffmpeg(args, **kw):
        dest = str(args[-1])
        if dest.endswith(".part") and "/.resized_b.mp4." in dest:
            Path(dest[len("file:"):]).write_bytes(b"\x00\x00\x00\x20ftypisom half")
            raise RuntimeError("ffmpeg: Error writing trailer: No space left on device")
        return real(args, **kw)

    monkeypatch.setattr(resized, "run_ffmpeg", run_ffmpeg)
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert failed == [videos["b"]] and counts["resized"] == 1
    assert error_lines(capsys.readouterr().err) == [
        f"error: {videos['b']}: ffmpeg: Error writing trailer: No space left on device"]
    assert not (tmp_path / "resized_b.mp4").exists() and not part_files(tmp_path)
    assert {d.path: d.reason for d in deletion.originals_with_copies(tmp_path, report=REPORT)}[videos["b"]] == "no resized copy"
