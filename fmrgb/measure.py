"""Measuring on this machine, for bench.py and the real-time factor: wall and CPU seconds of a call, and a
machine made quiet before it.

    seconds = timed(fn, *args)                 # wall seconds
    value, wall, cpu = timed_cpu(lambda: fn())  # its value, wall and CPU seconds (ffmpeg and workers included)
    quiesce("work", warm_mb=2048)              # untimed, before a timed part: flushed, memory made warm
"""
import os
import resource
import time
from pathlib import Path

import numpy as np


def cpu_seconds():
    """CPU time of this process and of its finished children (ffmpeg, pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, *args, **kwargs):
    """Wall seconds of fn(*args, **kwargs)."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def timed_cpu(fn):
    """(fn(), its wall seconds, its CPU seconds)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn()
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def quiesce(folder, warm_mb):
    """Untimed, before each timed part: flush what earlier parts left dirty, and hand the kernel
    `warm_mb` of memory it has touched recently (0: none).

    Flushing: otherwise the kernel writes earlier outputs back in the middle of a later measurement,
    taking one of the 2 cores. Warming: this VM hands memory that stays free back to its host (virtio
    balloon free page reporting), and the first touch of such memory is 10x slower: writing 64 MB
    files ran at 3.8 GB/s into recently used memory and 0.4 GB/s into returned memory. Writing and
    deleting a file in `folder` puts recently used memory at the head of the free lists, so the part
    measures our code on memory as an ordinary machine has it, not the host's page faults."""
    if warm_mb:
        block = np.ones(64 * 2**20, np.uint8)
        path = Path(folder) / "warm.bin"
        with open(path, "wb") as f:
            for _ in range(max(1, warm_mb // 64)):
                f.write(block)
        path.unlink()
    os.sync()
    time.sleep(0.2)
