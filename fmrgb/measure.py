"""Measuring on this machine, for bench.py and the real-time factor: wall and CPU seconds of a call.

    seconds = timed(fn, *args)                 # wall seconds
    value, wall, cpu = timed_cpu(lambda: fn())  # its value, wall and CPU seconds (ffmpeg and workers included)
"""
import resource
import time


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
