"""A resize that runs out of disk says so, with the path it was writing, leaves no partial file
and keeps its source; ffmpeg's own last words there are only "Conversion failed!"."""
import contextlib
import os
import subprocess

import pytest

from conftest import REPORT, make_video, part_files
from fmrgb import files
from fmrgb.prepare import resized


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KiB tmpfs (needs root)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_names_itself_and_the_copy_and_keeps_the_source(small_disk, capsys):
    video = make_video(small_disk / "a.mp4", seconds=3, size=(320, 240))
    before = video.read_bytes()
    counts, failed = resized.resize_videos(small_disk, mag=1, report=REPORT)
    assert failed == [video] and counts.get("resized", 0) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert err == [f"error: {video}: no space left on device writing {small_disk / 'resized_a.mp4'}"]
    assert video.read_bytes() == before and sorted(os.listdir(small_disk)) == ["a.mp4"]


def test_a_write_the_device_refuses_for_lack_of_space_names_the_copy(tmp_path, monkeypatch, capsys):
    # anywhere, unprivileged: ffmpeg's output goes to /dev/full, whose every write fails with ENOSPC
    video = make_video(tmp_path / "a.mp4", seconds=1)
    real = files.atomic_output

    @contextlib.contextmanager
    def onto_a_full_device(path):
        with real(path) as tmp:
            tmp.unlink()
            tmp.symlink_to("/dev/full")
            yield tmp

    monkeypatch.setattr(files, "atomic_output", onto_a_full_device)
    counts, failed = resized.resize_videos(tmp_path, mag=2, report=REPORT)
    assert failed == [video]
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert err == [f"error: {video}: no space left on device writing {tmp_path / 'resized_a.mp4'}"]
    assert not (tmp_path / "resized_a.mp4").exists() and not part_files(tmp_path)
