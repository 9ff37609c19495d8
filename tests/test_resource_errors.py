"""Errors say what happened: a full disk says "No space left on device" with the file it could not write
and leaves nothing partial; a temporary name never makes a name the file system allows too long."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, load_pt, make_video, run_script
from fmrgb import files

# in a user namespace, a 64 KiB tmpfs: room for the clip, not for its record
FULL_DISK_RUN = """
import json, os, shutil, subprocess, sys
disk, video, script = sys.argv[1:]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], check=True)
shutil.copy(video, disk)
checked = subprocess.run([sys.executable, script, "--target", disk], capture_output=True, text=True)
# the same run past the estimate, so that the write itself meets the full disk (an estimate can be short)
past = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); import fmrgb.prepare.diskspace as d; "
        "d.check_disk = lambda *a, **k: None; sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")
r = subprocess.run([sys.executable, "-c", past, os.path.dirname(script), script, "--target", disk],
                   capture_output=True, text=True)
print(json.dumps({"rc": r.returncode, "out": r.stdout, "err": r.stderr, "left": sorted(os.listdir(disk)),
                  "checked_rc": checked.returncode, "checked_err": checked.stderr}))
"""


def can_mount_tmpfs():
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs unshare -rm (a user namespace) to mount a small tmpfs")
def test_a_full_disk_says_so_with_the_record_it_could_not_write_and_leaves_nothing(tmp_path):
    video = make_video(tmp_path / "src" / "a.mp4", seconds=0.5, size=(160, 120))
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_DISK_RUN, str(disk), str(video),
                        str(ROOT / "create_fmrgbdata.py")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["checked_rc"] == 2 and "the records need" in got["checked_err"], got["checked_err"]  # refused first
    assert got["rc"] == 1 and "Traceback" not in got["err"], got["err"]
    assert got["err"].strip().splitlines() == [
        f"error: {disk / 'a.mp4'}: [Errno 28] No space left on device: '{disk / 'a.mp4.pt'}'"], got["err"]
    assert got["left"] == ["a.mp4"]  # no record, no temporary file; the video as it was


@pytest.mark.parametrize("stem", ["v" * 248, "é" * 124], ids=["ascii", "utf-8 cut inside a character"])
def test_a_record_name_of_255_bytes_is_written(tmp_path, stem):
    video = make_video(tmp_path / f"{stem}.mp4", seconds=0.3, size=(64, 48))
    assert len(bytes(str(video.name) + ".pt", "utf-8")) == 255
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 0 and not r.stderr, r.stderr
    assert load_pt(video.with_name(video.name + ".pt"))["frames"].shape[0] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == [video.name, video.name + ".pt"]


def test_a_record_name_longer_than_the_file_system_allows_is_one_line(tmp_path):
    video = make_video(tmp_path / f"{'v' * 249}.mp4", seconds=0.3, size=(64, 48))
    r = run_script("create_fmrgbdata.py", "--target", tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: {video}: [Errno 36] File name too long (256 bytes, the file system allows 255): "
        f"'{video}.pt'"]
    assert sorted(tmp_path.iterdir()) == [video]


def test_a_temporary_name_is_cut_to_the_longest_name_allowed(tmp_path):
    with files.atomic_output(tmp_path / ("x" * 255)) as tmp:
        assert len(tmp.name) == 255 and tmp.name.startswith(".xxx") and tmp.name.endswith(".part")
        tmp.write_bytes(b"done")
    assert (tmp_path / ("x" * 255)).read_bytes() == b"done"
    shutil.rmtree(tmp_path)
