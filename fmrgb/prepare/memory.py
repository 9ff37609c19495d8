"""Memory for decoded frames: one scratch block reused video after video, how much memory is
available, and the refusal of a video that would not fit, made before decoding instead of the
kernel killing the process halfway.

    scratch = ScratchBuffer(); frames = scratch.take((T, H, W, C))
    check_memory(n_frames, frame_bytes)     # NotEnoughMemory, with the figures and what to do
"""
import math
import os
from pathlib import Path

import numpy as np


class NotEnoughMemory(RuntimeError):
    """A video whose frames would not fit in the memory available: refused before decoding."""


class ScratchBuffer:
    """One block of memory reused for the decoded frames of video after video: a fresh array per
    clip would cost page faults and zeroing in the kernel every time. Not for sharing between threads."""

    def __init__(self):
        self._block = np.empty(0, np.uint8)

    @property
    def size(self):
        return self._block.size

    def take(self, shape):
        """An uninitialised uint8 array of `shape` in this buffer's memory, which the previous
        array taken from it shared: that one must no longer be needed."""
        size = math.prod(shape)
        if self._block.size < size:
            self._block = np.empty(0, np.uint8)  # let the old block go before the new one is made
            self._block = np.empty(size, np.uint8)
        return self._block[:size].reshape(shape)


def available_memory():
    """Bytes this process can still take without being killed: the kernel's MemAvailable, or less
    under a container's (cgroup) memory limit."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            avail = next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable:")), None)
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            avail = min(avail, int(Path(limit).read_text()) - int(Path(usage).read_text()))
        except (OSError, ValueError):  # no such cgroup, or "max": no limit
            pass
    return avail


def check_memory(n_frames, frame_bytes, *, reusable=0, keep=None):
    """Raise NotEnoughMemory, with the figures and what to do, when n_frames frames of frame_bytes
    each would not fit (`reusable`: bytes already held that the frames will reuse)."""
    need, avail = n_frames * frame_bytes, available_memory() + reusable
    if need > avail:
        how = ("give fewer --frames" if keep else "convert with --frames N (N frames, made as the video is "
               "read)") + " or resize the videos first (resize_video.py --mag)"
        raise NotEnoughMemory(f"needs {size_text(need)} for {n_frames} frames of {frame_bytes} bytes, only "
                              f"{size_text(avail)} of memory is available: {how}")


def size_text(n_bytes):
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"
