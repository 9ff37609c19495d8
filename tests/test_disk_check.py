"""A conversion estimates the bytes its records need and refuses, with the figure and the --size/--frames
hint, before it decodes anything, when the disk cannot hold them."""
import shutil

import pytest
from conftest import REPORT, make_video

import create_fmrgbdata
from fmrgb.prepare import convert, diskspace
from fmrgb.prepare.record import record_path


def free_space(monkeypatch, n_bytes):
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda folder: usage._replace(free=n_bytes))


def test_the_estimate_is_frames_times_pixels_times_channels_and_a_header(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=1, size=(64, 48))  # 30 frames
    assert diskspace.estimate_records([video], frames=None, size=None, channels=5) == 30 * 64 * 48 * 5 + 16_384
    assert diskspace.estimate_records([video], frames=8, size=16, channels=3) == 8 * 16 * 16 * 3 + 16_384
    assert diskspace.estimate_records([video], frames=None, size=None, channels=5, longest=60) == \
        60 * 64 * 48 * 5 + 16_384  # every record gets the longest count


def test_a_conversion_that_does_not_fit_is_refused_before_it_starts(tmp_path, monkeypatch):
    video = make_video(tmp_path / "d" / "v.mp4", seconds=1, size=(64, 48))
    free_space(monkeypatch, 100_000)
    with pytest.raises(diskspace.NotEnoughDisk) as refused:
        convert.convert_tree(tmp_path / "d", report=REPORT)
    message = str(refused.value)
    assert "the records need 0.5 MiB, only 0.1 MiB is free" in message
    assert "--size 112" in message and "--frames 32" in message
    assert not record_path(video).exists()
    assert convert.convert_tree(tmp_path / "d", size=16, frames=8, report=REPORT)[0]["converted"] == 1  # fits


def test_create_fmrgbdata_refuses_with_one_line(tmp_path, monkeypatch, capsys):
    make_video(tmp_path / "d" / "v.mp4", seconds=1, size=(64, 48))
    free_space(monkeypatch, 1000)
    args = create_fmrgbdata.get_args_parser().parse_args(["--target", str(tmp_path / "d"), "--size", "16"])
    with pytest.raises(SystemExit) as e:
        create_fmrgbdata.main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--frames 32" in err and "--size" not in err, err
