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


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_a_killed_conversion_leaves_no_worker_running(tmp_path, sig):
    for i in range(3):
        make_video(tmp_path / f"v{i}.mp4", seconds=2, size=(320, 240))
    proc = subprocess.Popen([sys.executable, str(ROOT / "create_fmrgbdata.py"), "--target", str(tmp_path),
                             "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    workers = []
    try:
        assert wait_until(lambda: len(children(proc.pid)) >= 2, 60), "no worker process started"
        workers = children(proc.pid)
        time.sleep(0.3)  # into the first videos
        os.kill(proc.pid, sig)  # the parent alone, as the kernel's OOM killer or `kill -9 PID` does
        proc.wait(timeout=30)
        assert wait_until(lambda: not any(alive(w) for w in workers), 5), \
            f"worker processes {[w for w in workers if alive(w)]} outlived their parent"
    finally:
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not list(tmp_path.glob(".*.part")), "a worker ended without removing its temporary file"


def test_a_killed_resize_leaves_no_ffmpeg_running(tmp_path):
    make_video(tmp_path / "long.mp4", seconds=30, size=(640, 480))
    proc = subprocess.Popen([sys.executable, str(ROOT / "resize_video.py"), "--target", str(tmp_path), "--mag", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    encoders = []
    try:
        assert wait_until(lambda: children(proc.pid), 60), "resize started no ffmpeg"
        encoders = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer or `kill -9 PID` does
        proc.wait(timeout=30)
        assert wait_until(lambda: not any(alive(p) for p in encoders), 5), \
            f"ffmpeg {[p for p in encoders if alive(p)]} outlived the resize step that started it"
    finally:
        for p in encoders:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
