"""A killed step leaves no process behind: its worker processes end with it, whatever signal killed it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_video


def children(pid):
    """The pids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid):
    """True while `pid` runs (a zombie, waiting for its new parent to reap it, has ended)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def kill_and_check(proc, *, sig, what, count=1, settle=0.0):
    """Kill the step `proc` alone with `sig` (as the OOM killer or `kill -9 PID` does) once `count` child
    processes run, `settle` s later; fail if any of them is still running 5 s after it ended. Cleans up."""
    kids = []
    try:
        assert wait_until(lambda: len(children(proc.pid)) >= count, 60), f"fewer than {count} {what} processes"
        kids = children(proc.pid)
        time.sleep(settle)
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        assert wait_until(lambda: not any(alive(k) for k in kids), 5), \
            f"{what} processes {[k for k in kids if alive(k)]} outlived the step that started them"
    finally:
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_a_killed_conversion_leaves_no_worker_running(tmp_path, sig):
    for i in range(3):
        make_video(tmp_path / f"v{i}.mp4", seconds=2, size=(320, 240))
    proc = subprocess.Popen([sys.executable, str(ROOT / "create_fmrgbdata.py"), "--target", str(tmp_path),
                             "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    kill_and_check(proc, sig=sig, what="worker", count=2, settle=0.3)  # 0.3 s: into the first videos
    assert not list(tmp_path.glob(".*.part")), "a worker ended without removing its temporary file"


def test_a_killed_resize_leaves_no_ffmpeg_running(tmp_path):
    make_video(tmp_path / "long.mp4", seconds=30, size=(640, 480))
    proc = subprocess.Popen([sys.executable, str(ROOT / "resize_video.py"), "--target", str(tmp_path), "--mag", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    kill_and_check(proc, sig=signal.SIGKILL, what="ffmpeg")
