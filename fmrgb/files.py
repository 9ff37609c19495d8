"""Files: which videos and records there are, what derived files are called, atomic writes.

Every path handed to a subprocess is one argv element; nothing here goes through a shell.
"""
import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
RESIZED_PREFIX = "resized_"

_UMASK = os.umask(0)
os.umask(_UMASK)


def find_files(root, suffixes):
    """Every file under `root` whose suffix is in `suffixes`, sorted. Symlinked files are left out:
    one pointing out of `root` is not ours to touch, and one pointing inside it would hand the same
    clip over twice (the file itself is found anyway). Directory links are never followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            if p.suffix.lower() in suffixes and not p.is_symlink():
                found.append(p)
    return sorted(found)


def find_videos(root):
    return find_files(root, VIDEO_EXTS)


def is_resized(path):
    return Path(path).name.startswith(RESIZED_PREFIX)


def resized_names(videos):
    """{video: its resized sibling}: resized_<stem>.mp4, or resized_<name>.mp4 for a non-mp4 video
    whose stem another video in the same folder shares (a.mp4 + a.avi -> resized_a.mp4 + resized_a.avi.mp4).
    Videos that would still clash are left out: nothing is ever written over another's output."""
    names = {Path(v): Path(v).with_name(f"{RESIZED_PREFIX}{Path(v).stem}.mp4") for v in videos}
    taken = {}
    for v, out in names.items():
        taken.setdefault(out, []).append(v)
    for group in taken.values():
        if len(group) > 1:
            for v in group:
                if v.suffix != ".mp4":
                    names[v] = v.with_name(f"{RESIZED_PREFIX}{v.name}.mp4")
    counts = {}
    for out in names.values():
        counts[out] = counts.get(out, 0) + 1
    return {v: out for v, out in names.items() if counts[out] == 1}


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary name is hidden and ends in `.part`, so no step ever takes it for a finished file.
    """
    path = Path(path)
    tmp = None
    # Ctrl-C between creating the temp file and remembering its name would leave it behind
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            tmp = Path(name)
        finally:
            if main_thread:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the output should look like any other file
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def write_text(path, text):
    """`text` into `path`, atomically (UTF-8)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_csv(path, header, rows):
    """A CSV file with a header row, atomically: the one CSV writer of the toolkit."""
    import csv

    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def write_json(path, obj):
    """`obj` as indented JSON, atomically."""
    import json

    write_text(path, json.dumps(obj, indent=2) + "\n")
