"""One file costs only itself: a worker process that dies (a decoder library crashing, the kernel
killing it for memory) is named and counted as failed, and every other file is still done."""
import os
import signal

import pytest

import create_fmrgbdata
from conftest import REPORT, load_pt, make_video
from fmrgb import runloop
from fmrgb.prepare import convert


def crash_on_b(item):
    """A job that dies like a segfaulting decoder on the item named b, and succeeds on the others."""
    if item == "b":
        os.kill(os.getpid(), signal.SIGSEGV)
    return ("done", item.upper())


def killed_on_odd(item):
    if item % 2:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does
    return "done"


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_a_crashing_item_is_named_and_the_others_are_done(jobs, capsys):
    counts, values, failed = runloop.run_jobs(crash_on_b, ["a", "b", "c", "d", "e"], report=REPORT, jobs=jobs,
                                              processes=True)
    assert failed == ["b"]
    assert counts == {"done": 4, "failed": 1}
    assert values == {"a": "A", "c": "C", "d": "D", "e": "E"}
    err = capsys.readouterr().err
    assert f"error: b: {runloop.WORKER_DIED}" in err.splitlines()


def test_several_killed_workers_are_each_named_once(capsys):
    counts, _, failed = runloop.run_jobs(killed_on_odd, list(range(8)), jobs=2, processes=True, report=REPORT)
    assert sorted(failed) == [1, 3, 5, 7] and counts == {"done": 4, "failed": 4}
    assert sum(runloop.WORKER_DIED in line for line in capsys.readouterr().err.splitlines()) == 4


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_video_that_crashes_the_converter_fails_alone_with_a_summary_and_exit_1(tmp_path, monkeypatch, capsys,
                                                                                   jobs):
    for name in ("a", "b", "c"):
        make_video(tmp_path / f"{name}.mp4", seconds=0.5, size=(64, 48))
    real = convert.convert_video

    def crashing(path, **kw):
        if path.name == "b.mp4":
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, **kw)

    monkeypatch.setattr(convert, "convert_video", crashing)  # the workers are forked with it
    args = create_fmrgbdata.get_args_parser().parse_args(["--target", str(tmp_path), "--jobs", jobs])
    assert create_fmrgbdata.main(args) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "converted 2, aligned 0, skipped (up to date) 0, failed 1"
    assert f"error: {tmp_path / 'b.mp4'}: {runloop.WORKER_DIED}" in err
    assert not (tmp_path / "b.mp4.pt").exists()
    assert load_pt(tmp_path / "a.mp4.pt")["frames"].shape == load_pt(tmp_path / "c.mp4.pt")["frames"].shape


def test_warnings_of_a_worker_reach_the_user(tmp_path, capsys):
    make_video(tmp_path / "quiet.mp4", seconds=0.5, size=(64, 48), audio=None)
    counts, _ = convert.convert_tree(tmp_path, report=REPORT)
    assert counts["converted"] == 1
    assert f"warning: {tmp_path / 'quiet.mp4'}: no sound track; sound channels are 0" in capsys.readouterr().err


def test_a_record_that_does_not_read_back_is_named_when_aligning(tmp_path, monkeypatch, capsys):
    make_video(tmp_path / "short.mp4", seconds=0.5, size=(64, 48))
    make_video(tmp_path / "long.mp4", seconds=1, size=(64, 48))
    real = convert.existing_state

    def unreadable_short(video, recipe, *, check_source=True, **kw):  # the align pass reads with check_source=False
        return None if video.name == "short.mp4" and not check_source else real(video, recipe,
                                                                                 check_source=check_source, **kw)

    monkeypatch.setattr(convert, "existing_state", unreadable_short)
    counts, failed = convert.convert_tree(tmp_path, report=REPORT)
    assert failed == [tmp_path / "short.mp4"] and counts["failed"] == 1
    assert f"error: {tmp_path / 'short.mp4'}: its .pt does not read back: short.mp4.pt" in capsys.readouterr().err
