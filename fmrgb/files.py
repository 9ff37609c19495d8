"""Files: which videos and records there are, what derived files are called, atomic writes.

Every path handed to a subprocess is one argv element; nothing here goes through a shell.
"""
import contextlib
import errno
import hashlib
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

# containers ffmpeg reads as video, and the animated picture formats (a still one is named, not taken)
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts",
              ".mts", ".m2ts", ".3g2", ".ogv", ".vob", ".mxf", ".f4v", ".asf", ".dv", ".divx", ".y4m",
              ".gif", ".webp", ".apng"}
ANIMATION_EXTS = {".gif", ".webp", ".apng"}
# media that is not a clip: named by the video steps, so a picture or a sound file never vanishes unseen
NOT_CLIP_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif",
                 ".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".wma"}
RESIZED_PREFIX = "resized_"
# what a step says of a file listed at its start and removed by another program before its turn
VANISHED = "removed while the step ran (No such file or directory): left out"
TEMP_SUFFIX = ".part"
TEMP_EXTRA = len(".") + len(".") + 8 + len(TEMP_SUFFIX)  # what a temporary name adds: .<name>.XXXXXXXX.part

_UMASK = os.umask(0)
os.umask(_UMASK)


def _kind(mode):
    for test, word in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return word
    return "not a regular file"


def _walk(root, suffixes, skip):
    """(path, lstat result) of every regular file under `root` whose suffix is in `suffixes` (None: any);
    links and other kinds of file with such a suffix are passed to skip(path, why), never opened."""
    def unreadable(err):
        skip(Path(err.filename or root), f"folder cannot be read ({err.strerror}): its files are left out")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        dirnames.sort()
        for name in dirnames:
            if (Path(dirpath) / name).is_symlink():
                skip(Path(dirpath) / name, "folder is a symlink, not followed: its files are left out")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if suffixes is not None and p.suffix.lower() not in suffixes:
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue  # removed since its folder was listed: there is nothing to process
            except OSError as e:
                skip(p, f"cannot be read ({e.strerror}): left out")
                continue
            if stat.S_ISLNK(st.st_mode):
                skip(p, "is a symlink, not followed: left out (copy the file here to include it)")
            elif not stat.S_ISREG(st.st_mode):
                # opening a named pipe would wait for a writer forever
                skip(p, f"is {_kind(st.st_mode)}, not a file: never opened, left out")
            else:
                yield p


def find_files(root, suffixes, *, on_skip=None):
    """Every regular file under `root` whose suffix is in `suffixes`, sorted. Symlinked files are left
    out: one pointing out of `root` is not ours to touch, and one pointing inside it would hand the
    same clip over twice (the file itself is found anyway). Directory links are never followed, and
    named pipes, sockets and devices never opened. Each file or folder left out (a link, another
    kind of file, a folder that cannot be read) is passed to on_skip(path, why), so that the step
    can name it instead of its files vanishing without a word."""
    return sorted(_walk(root, set(suffixes), on_skip or (lambda path, why: None)))


def find_videos(root, *, on_skip=None):
    """The videos under `root` (find_files of VIDEO_EXTS). With on_skip, also named: a .gif, .webp or
    .apng that holds one picture (a still, not a clip) and a picture or sound file of another format."""
    skip = on_skip or (lambda path, why: None)
    videos = []
    for p in _walk(root, VIDEO_EXTS | NOT_CLIP_EXTS if on_skip else VIDEO_EXTS, skip):  # a CSV's link: not ours
        ext = p.suffix.lower()
        if ext in ANIMATION_EXTS and not is_animated(p):
            skip(p, f"a still {ext[1:]} picture, not a clip: left out")
        elif ext in VIDEO_EXTS:
            videos.append(p)
        elif ext in NOT_CLIP_EXTS and not p.name.endswith(".pt.png"):  # <record>.png: visualize.py's picture
            skip(p, f"a {ext[1:]} file is a picture or a sound, not a clip: left out")
    return sorted(videos)


def is_animated(path):
    """True when a .gif, .webp or .apng holds more than one picture (read from its header and block
    structure, without decoding); False for a still one or one that cannot be read as such (then it
    is taken as a clip, and the step that decodes it says what is wrong)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                chunk = f.read(9)
                return chunk[:4] == b"VP8X" and bool(chunk[8] & 0x02)  # VP8X flags: bit 1 = animation
            if head[:6] in (b"GIF87a", b"GIF89a"):
                f.seek(0)
                return _gif_pictures(f.read()) != 1
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                f.seek(0)
                return _png_pictures(f.read()) != 1
    except (OSError, IndexError):
        pass
    return True


def _gif_pictures(data):
    """How many image descriptors a GIF holds (counting stops at 2)."""
    pos, n = 13, 0
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)  # the global colour table
    while pos < len(data) and n < 2:
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x2C:  # an image: descriptor, local colour table, LZW code size, then data blocks
            n += 1
            flags = data[pos + 9]
            pos += 10 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
        elif block == 0x21:  # an extension: label, then data blocks
            pos += 2
        else:
            return 0
        while pos < len(data) and data[pos]:  # data blocks, each prefixed by its length, up to a 0
            pos += data[pos] + 1
        pos += 1
    return n


def _png_pictures(data):
    """The frame count an APNG's acTL chunk declares, or 1 for a PNG without one."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"acTL":
            return int.from_bytes(data[pos + 8:pos + 12], "big")
        if kind == b"IDAT":
            break
        pos += 12 + length
    return 1


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
    (a.avi and a.avi.mp4): the copy's stamp (fmrgb.prepare.resized) says whose it is, and nothing is
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


def _name_max(folder):
    """The longest file name (in bytes) the file system under `folder` allows."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary name is hidden and ends in `.part`, so no step ever takes it for a finished file;
    `path`'s name is cut short in it where the extra characters would make it longer than the
    file system allows (so any name that may exist can be written).
    """
    path = Path(path)
    name_max = _name_max(path.parent)
    if len(os.fsencode(path.name)) > name_max:
        raise OSError(errno.ENAMETOOLONG, f"File name too long ({len(os.fsencode(path.name))} bytes, "
                                          f"the file system allows {name_max})", str(path))
    # a cut inside a UTF-8 character leaves stray bytes, which os.fsdecode keeps as they are
    stem = os.fsdecode(os.fsencode(path.name)[:name_max - TEMP_EXTRA])
    tmp = None
    # Ctrl-C between creating the temp file and remembering its name would leave it behind
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=TEMP_SUFFIX, dir=path.parent)
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


def beside(out, name):
    """The file `name` that belongs to the output file `out`: <out's stem>_<name> in its folder, so that two
    outputs in one folder (a training run's metrics.json, predict.py's) never write over each other."""
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}")


def write_json(path, obj):
    """`obj` as indented, strict JSON (NaN and infinities written as null), atomically."""
    import json

    write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")
