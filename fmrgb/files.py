"""Files: which videos and records there are, what derived files are called, atomic writes.

Every path handed to a subprocess is one argv element; nothing here goes through a shell.
"""
import contextlib
import hashlib
import os
import signal
import tempfile
import threading
from pathlib import Path

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
RESIZED_PREFIX = "resized_"

_UMASK = os.umask(0)
os.umask(_UMASK)


def find_files(root, suffixes, *, on_skip=None):
    """Every file under `root` whose suffix is in `suffixes`, sorted. Symlinked files are left out:
    one pointing out of `root` is not ours to touch, and one pointing inside it would hand the same
    clip over twice (the file itself is found anyway). Directory links are never followed.
    A folder left out (a link, or one that cannot be read) is passed to on_skip(folder, why), so
    that the step can name it instead of its files vanishing without a word."""
    found = []

    def unreadable(err):
        if on_skip is not None:
            on_skip(Path(err.filename or root), f"folder cannot be read ({err.strerror}): its files are left out")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        dirnames.sort()
        for name in dirnames:
            if on_skip is not None and (Path(dirpath) / name).is_symlink():
                on_skip(Path(dirpath) / name, "folder is a symlink, not followed: its files are left out")
        for name in filenames:
            p = Path(dirpath) / name
            if p.suffix.lower() in suffixes and not p.is_symlink():
                found.append(p)
    return sorted(found)


def find_videos(root, *, on_skip=None):
    return find_files(root, VIDEO_EXTS, on_skip=on_skip)


def is_resized(path):
    return Path(path).name.startswith(RESIZED_PREFIX)


def resized_name(video):
    """The resized copy of `video`, from its own name alone: resized_<stem>.mp4 for an .mp4 and
    resized_<name>.mp4 for any other container (a.avi -> resized_a.avi.mp4), so a name, once given,
    keeps its meaning whichever siblings come and go."""
    video = Path(video)
    return video.with_name(f"{RESIZED_PREFIX}{video.stem if video.suffix == '.mp4' else video.name}.mp4")


def originals_of(copy):
    """The names whose resized copy `copy` would be (resized_name reversed, beside it): resized_a.mp4
    is a.mp4's; resized_a.avi.mp4 is a.avi's or a.avi.mp4's."""
    copy = Path(copy)
    rest = copy.name[len(RESIZED_PREFIX):]
    if not is_resized(copy) or not rest.endswith(".mp4"):
        return []
    base = rest[:-len(".mp4")]
    names = [base + ".mp4", base]
    return [copy.with_name(n) for n in names
            if Path(n).suffix.lower() in VIDEO_EXTS and resized_name(copy.with_name(n)).name == copy.name]


def resized_names(videos):
    """{video: its resized sibling} (resized_name of each). Two videos can still share a name
    (a.avi and a.avi.mp4): the copy's stamp (fmrgb.resized) says whose it is, and nothing is
    ever written over another video's copy."""
    return {Path(v): resized_name(v) for v in videos}


def file_digest(path):
    """SHA-256 (hex) of a file's bytes, read in 1 MiB pieces: what ties a derived file to the
    content of its source, whatever its name, size or times. Runs at about 1.3 GB/s."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


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


def json_safe(obj):
    """`obj` with every NaN or infinity (also in nested lists and dicts) as None: strict JSON has no NaN."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path, obj):
    """`obj` as indented, strict JSON (NaN and infinities written as null), atomically."""
    import json

    write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")
