"""The command-line side every step shares: how a path and an error read in one line, exit
statuses, and argument types. The per-file run loop and what it prints are runloop's.

Library modules raise or hand their warnings to a report (runloop); only the scripts print and
exit: `usage_error` is the one way to exit 2, `interruptible` the one way to exit 130.
"""
import argparse
import contextlib
import functools
import re
import sys
from pathlib import Path

from fmrgb import treelock


# ----------------------------------------------------------------------------- messages

def show_path(path):
    """The path on one line: control characters (a newline in a file name) shown escaped."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], str(path))


def error_summary(err):
    """One short line for an exception: its first line, or, for torch's several-paragraph refusal
    to unpickle anything but tensors, what that means."""
    text = str(err)
    if "Weights only load failed" in text:
        return "refused by torch.load(weights_only=True): it holds objects other than tensors (possibly code)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def fail_line(path, err):
    return f"error: {show_path(path)}: {error_summary(err)}"


def warn(path, message):
    """One warning line on stderr, above any progress bar."""
    from tqdm import tqdm

    tqdm.write(f"warning: {show_path(path)}: {message}", file=sys.stderr)


def usage_error(msg):
    """One clear line and exit status 2: a bad command line, or data that cannot be used at all."""
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def check_target_dir(target):
    if not Path(target).is_dir():
        usage_error(f"--target {target}: no such folder")


def hold_tree(target, *, shared=False):
    """The lock of the folder a step works on (treelock.hold), held until the with block ends; a
    folder another step holds is refused in one line, one that cannot be locked is named in a warning."""
    try:
        lock = treelock.hold(target, shared=shared)
    except treelock.TreeBusy as e:
        usage_error(str(e))
    if lock.unlocked:
        warn(target, f"cannot be locked here ({lock.unlocked}): make sure no other step works on it meanwhile")
    return lock


def hold_data(data):
    """What a run that reads the records and adds only its own files (training's cache, drawings)
    holds: the data folder (a CSV's or a file's folder) shared with other such runs, never with a
    step that rewrites or deletes; nothing for a path that is not there (the run says so itself)."""
    folder = Path(data) if Path(data).is_dir() else Path(data).parent
    return hold_tree(folder, shared=True) if Path(data).exists() else contextlib.nullcontext()


def interruptible(main):
    """Ctrl-C ends a step promptly with status 130; atomic_output has already removed its temp files."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return wrapper


# ----------------------------------------------------------------------------- argument types

def positive_int(text):
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_bool(text):
    """'true'/'false' (also 1/0, yes/no, on/off, any case) -> bool."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on", "t"):
        return True
    if value in ("false", "0", "no", "n", "off", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_shard(text):
    """'i/n' -> (i, n), with 0 <= i < n; an argparse type."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like i/n (e.g. 0/4), not {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"needs 0 <= i < n, not {text!r}")
    return i, n


def shard_of(items, shard):
    """The i-th of n interleaved parts of the sorted items: no overlap, no gaps, balanced."""
    if shard is None:
        return list(items)
    i, n = shard
    return sorted(items)[i::n]
