"""Hostile names, symlinks, read-only, empty and missing targets: each step does its work, or
fails cleanly, without following a link out, deleting what a link points to, or touching
anything else."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPORT, ROOT, digest, error_lines, load_pt, run_script, snapshot, tiny
from fmrgb import files


# ----------------------------------------------------------------------------- names
from fmrgb.prepare import convert, resized


# ----------------------------------------------------------------------------- names

HOSTILE_NAMES = ["new\nline.mp4", "semi;colon.mp4", "$(touch PWNED_FILE).mp4", "-dash.mp4",
                 "ünïcödé ëñ.mp4", "glob [1] *?.mp4", "quote's \"q\".mp4", "sp ace.mkv"]


def test_hostile_names_and_a_glob_target_with_a_lookalike_sibling(tmp_path):
    folder_name = "-it's $(touch PWNED); x [1]"
    target = tmp_path / folder_name
    lookalike = tmp_path / "-it's $(touch PWNED); x 1"  # what the glob [1] would match
    for name in HOSTILE_NAMES:
        tiny(target / name)
    tiny(lookalike / "sp ace.mkv")
    tiny(lookalike / "1.mp4")
    before = snapshot(lookalike)
    # a leading '-' folder needs the --target=VALUE spelling; relative, from the parent folder
    r = run_script("resize_video.py", f"--target={folder_name}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resized {len(HOSTILE_NAMES)}," in r.stdout
    r = run_script("create_fmrgbdata.py", f"--target={folder_name}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in HOSTILE_NAMES:
        copy_name = Path(name).stem if name.endswith(".mp4") else name  # a.mkv -> resized_a.mkv.mp4
        assert (target / f"resized_{copy_name}.mp4").is_file(), name
        assert load_pt(target / f"{name}.pt")["frames"].shape[0] == 15, name
    assert snapshot(lookalike) == before
    assert not list(tmp_path.rglob("PWNED*")) and not list(ROOT.glob("PWNED*"))


# ----------------------------------------------------------------------------- symlinks

def test_links_out_of_the_target_loops_and_dangling_links_are_left_alone(tmp_path, capsys):
    target, outside = tmp_path / "data", tmp_path / "outside"
    tiny(target / "cls" / "a.mp4")
    tiny(outside / "o.mp4")
    os.symlink(outside / "o.mp4", target / "cls" / "out.mp4")
    os.symlink("loop2.mp4", target / "cls" / "loop1.mp4")
    os.symlink("loop1.mp4", target / "cls" / "loop2.mp4")
    os.symlink("nowhere.mp4", target / "cls" / "dangling.mp4")
    os.symlink("..", target / "cls" / "up")  # a directory loop
    os.symlink(outside, target / "outdir")
    os.symlink("a.mp4", target / "cls" / "inside.mp4")  # a link inside would repeat a.mp4: left alone too
    outside_before, links_before = snapshot(outside), snapshot(target)

    assert files.find_videos(target) == [target / "cls" / "a.mp4"]
    counts, failed = convert.convert_tree(target, report=REPORT)
    assert not failed and counts["converted"] == 1
    counts, failed = resized.resize_videos(target, mag=2, report=REPORT)
    assert not failed and counts["resized"] == 1
    assert not error_lines(capsys.readouterr().err)
    assert snapshot(outside) == outside_before
    after = snapshot(target)
    assert {k: v for k, v in after.items() if k in links_before} == links_before
    assert set(after) - set(links_before) == {"cls/a.mp4.pt", "cls/resized_a.mp4"}
    # the target itself may be a link to the data
    os.symlink(target, tmp_path / "data_link")
    counts, _ = convert.convert_tree(tmp_path / "data_link", report=REPORT)
    assert counts.get("skipped") == 1 and counts["failed"] == 0


def test_delete_not_resized_never_deletes_the_file_its_resized_copy_points_to(tmp_path):
    video = tiny(tmp_path / "a.mp4")
    os.symlink("a.mp4", tmp_path / "resized_a.mp4")
    r = run_script("delete_not_resized.py", "--target", tmp_path)
    assert r.returncode in (0, 1)
    assert video.is_file() and digest(video)


# ----------------------------------------------------------------------------- read-only, empty, missing

def _readonly_runner():
    """A way to run a command with a folder read-only (a private read-only bind mount, as root),
    or None when this machine offers none."""
    if os.geteuid() != 0:
        return "chmod"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp /tmp"],
                           capture_output=True)
    return "mount" if probe.returncode == 0 else None


READONLY = _readonly_runner() if shutil.which("unshare") or os.geteuid() != 0 else None


def run_readonly(folder, script, *args):
    cmd = [sys.executable, str(ROOT / script), *map(str, args)]
    if READONLY == "mount":
        cmd = ["unshare", "-m", "sh", "-c",
               'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"', str(folder), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(READONLY is None, reason="no way to make a read-only folder here")
def test_read_only_target_fails_each_file_cleanly_and_changes_nothing(tmp_path):
    target = tmp_path / "ro"
    tiny(target / "a.mp4")
    tiny(target / "b.mp4")
    resized.resize_videos(target, mag=2, report=REPORT)
    (target / "resized_b.mp4").unlink()  # a, b and resized_a.mp4 are three videos to convert
    before = snapshot(target)
    if READONLY == "chmod":
        target.chmod(0o555)
    try:
        for script, args, n_errors in [("create_fmrgbdata.py", [], 3), ("resize_video.py", [], 1),
                                       ("delete_allmp4.py", ["--all"], 3), ("delete_not_resized.py", [], 1)]:
            r = run_readonly(target, script, "--target", target, *args)
            assert r.returncode == 1, (script, r.stderr)
            assert "Traceback" not in r.stderr, (script, r.stderr)
            assert len(error_lines(r.stderr)) == n_errors, (script, r.stderr)
            assert snapshot(target) == before, script
    finally:
        target.chmod(0o755)


@pytest.mark.skipif(READONLY is None, reason="no way to make a read-only folder here")
def test_scan_of_a_read_only_target_is_a_clean_error(tmp_path):
    target = tmp_path / "ro"
    tiny(target / "a.mp4")
    if READONLY == "chmod":
        target.chmod(0o555)
    try:
        r = run_readonly(target, "create_fmrgbdata.py", "--target", target, "--scan")
    finally:
        target.chmod(0o755)
    assert r.returncode == 1 and "Traceback" not in r.stderr and error_lines(r.stderr), r.stderr


SCRIPTS = [("create_fmrgbdata.py", "converted 0,"), ("resize_video.py", "resized 0,"),
           ("delete_allmp4.py", "deleted 0,"), ("delete_not_resized.py", "deleted 0,")]


@pytest.mark.parametrize("script,summary", SCRIPTS)
def test_missing_target_is_a_usage_error_and_an_empty_one_a_quiet_success(tmp_path, script, summary):
    r = run_script(script, "--target", tmp_path / "nope")
    assert r.returncode == 2 and "no such folder" in r.stderr
    (tmp_path / "file.mp4").write_bytes(b"x")
    r = run_script(script, "--target", tmp_path / "file.mp4")
    assert r.returncode == 2 and "no such folder" in r.stderr
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no videos here")
    before = snapshot(empty)
    r = run_script(script, "--target", empty)
    assert r.returncode == 0 and summary in r.stdout and not r.stderr.strip(), r.stderr
    assert snapshot(empty) == before
    r = run_script(script, "--target", empty, "--no-such-flag")
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
