"""Media I/O shared by the step scripts: ffmpeg calls, probing, decoding, file discovery,
atomic writes and the per-file run loop with its summary and exit status.

ffmpeg comes from the imageio-ffmpeg wheel, so nothing needs installing system-wide.
Nothing here goes through a shell: every path is one argv element.
"""
import contextlib
import dataclasses
import functools
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# OpenCV's bundled FFmpeg would print its own warnings for every broken file; ours say it once
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
_UMASK = os.umask(0)
os.umask(_UMASK)

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
RESIZED_PREFIX = "resized_"
FFMPEG_TIMEOUT = 600  # seconds; a 10 s clip takes well under one, so this only catches hangs


@functools.lru_cache(maxsize=1)
def ffmpeg_exe():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args, *, timeout=FFMPEG_TIMEOUT, check=True, input=None):
    """Run ffmpeg with `args` (bytes in `input` reach it as pipe:0); on failure raise RuntimeError
    carrying ffmpeg's own last words."""
    cmd = [ffmpeg_exe(), "-hide_banner", *[str(a) for a in args]]
    if input is None:
        cmd.insert(1, "-nostdin")  # never let ffmpeg read the terminal
    try:
        return subprocess.run(cmd, capture_output=True, check=check, timeout=timeout, input=input)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(ffmpeg_error(e.stderr)) from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"ffmpeg did not finish within {timeout} s") from None


def ffmpeg_error(stderr):
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return "ffmpeg: " + (lines[-1] if lines else "failed without a message")


def input_arg(path):
    # "file:" stops ffmpeg reading a name like "-x.mp4" as an option or "a:b.mp4" as a protocol
    return "file:" + os.fspath(Path(path).absolute())


# ----------------------------------------------------------------------------- probing

@dataclasses.dataclass
class MediaInfo:
    duration: float | None  # container duration in seconds (an estimate; decoding is the truth)
    has_video: bool
    has_audio: bool
    fps: float | None
    width: int | None
    height: int | None
    audio_codec: str | None
    video_codec: str | None
    comment: str | None = None  # the container's "comment" tag (resize_video.py stamps its source there)


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #(\d+):\d+.*?: (Video|Audio): (\w+)(.*)")
_SIZE = re.compile(r"[ ,](\d{1,5})x(\d{1,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_COMMENT = re.compile(r"^\s*comment\s*:\s?(.*)$", re.M)


def parse_stream_info(stderr, file_index=0):
    """Read what ffmpeg printed about input `file_index` (or output, for "Output #") into MediaInfo."""
    text = stderr if isinstance(stderr, str) else stderr.decode("utf-8", "replace")
    info = MediaInfo(None, False, False, None, None, None, None, None)
    input_part = text.split("Output #0", 1)[0]
    m = _COMMENT.search(input_part.split("Stream #", 1)[0])  # the file's own tags, before its streams'
    if m:
        info.comment = m.group(1).strip()
    m = _DURATION.search(text)
    if m:
        h, mi, s = m.groups()
        info.duration = int(h) * 3600 + int(mi) * 60 + float(s)
    for m in _STREAM.finditer(text):
        if int(m.group(1)) != file_index:
            continue
        kind, codec, rest = m.group(2), m.group(3), m.group(4)
        if kind == "Audio" and not info.has_audio:
            info.has_audio, info.audio_codec = True, codec
        elif kind == "Video" and not info.has_video and "attached pic" not in rest:
            info.has_video, info.video_codec = True, codec
            size = _SIZE.search(rest)
            if size:
                info.width, info.height = int(size.group(1)), int(size.group(2))
            rates = {unit: float(v) * (1000 if k else 1) for v, k, unit in _FPS.findall(rest)}
            info.fps = rates.get("fps") or rates.get("tbr")
    return info


def probe(path):
    """Container facts from `ffmpeg -i` (no ffprobe in the wheel). Raises on unreadable files."""
    proc = run_ffmpeg(["-i", input_arg(path)], check=False, timeout=60)
    info = parse_stream_info(proc.stderr)
    if not info.has_video and not info.has_audio:
        raise RuntimeError(ffmpeg_error(proc.stderr) if proc.returncode else "no video or audio stream")
    return info


# ----------------------------------------------------------------------------- decoding

def decode_video(path, *, gray=False, extra_channels=0, on_fps=None, scratch=None, threads=None):
    """Decode every frame that really decodes (container frame counts lie), and the frame rate.

    Returns (frames, fps): frames uint8 [T, H, W, P + extra_channels], contiguous, with the picture
    in the first P channels (RGB, or P = 1 grey = ITU-R 601 luma) and the extra channels left
    for the caller to fill, so the output is written once, while each decoded frame is still in
    cache. OpenCV decodes in-process, several times faster than piping raw frames out of ffmpeg;
    ffmpeg is the fallback for what OpenCV cannot open, and gives the error message.
    `on_fps(fps)` is called as soon as the rate is known, before the frames are decoded, so a
    caller can start decoding the sound alongside. With a `scratch` (ScratchBuffer) the frames
    are a view of its memory, valid until its next use. `threads`: OpenCV's decoder threads,
    0 for its default (all cores), None to choose by the clip's size (see _open_capture).
    """
    alloc = scratch.take if scratch is not None else (lambda shape: np.empty(shape, np.uint8))
    buffer, n, fps = _decode_opencv(path, gray, extra_channels, on_fps, alloc, threads)
    if buffer is not None:
        # the first n frames, a contiguous view; copied out when the buffer is larger than they are
        # and is not a scratch buffer, so the unused rest is not kept alive with them
        frames = buffer[:n] if scratch is not None or n == len(buffer) else buffer[:n].copy()
    else:
        rgb, fps = _decode_ffmpeg(path)
        if on_fps:
            on_fps(fps)
        n_pic = 1 if gray else 3
        frames = alloc((*rgb.shape[:3], n_pic + extra_channels))
        if gray:
            cv2 = cv2_module()
            frames[..., 0] = cv2.cvtColor(rgb.reshape(-1, rgb.shape[2], 3), cv2.COLOR_RGB2GRAY).reshape(rgb.shape[:3])
        else:
            frames[..., :3] = rgb
    return frames, fps


@functools.lru_cache(maxsize=1)
def cv2_module():
    import cv2

    return cv2


class ScratchBuffer:
    """One block of memory reused for the decoded frames of video after video. A fresh 55 MB array
    per clip costs page faults and zeroing in the kernel every time: reusing one block made a
    conversion run 20 ms per 5 s clip faster (docs/benchmarks.md). Not for sharing between threads."""

    def __init__(self):
        self._block = np.empty(0, np.uint8)

    def take(self, shape):
        """An uninitialised uint8 array of `shape` in this buffer's memory, which the previous
        array taken from it shared: that one must no longer be needed."""
        size = math.prod(shape)
        if self._block.size < size:
            self._block = np.empty(0, np.uint8)  # let the old block go before the new one is made
            self._block = np.empty(size, np.uint8)
        return self._block[:size].reshape(shape)


def initial_frames_limit_bytes():
    """A header may claim any frame count: an array for more than half the machine's memory is
    not made up front (beyond it, the array grows as frames come)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


SMALL_CLIP = 20_000_000  # width x height x frames below which one decoder thread is faster


def _open_capture(path, threads):
    """A VideoCapture with `threads` decoder threads (0: OpenCV's default), or with None one thread
    for a clip smaller than SMALL_CLIP and the default for a larger one. A conversion decodes
    the sound in ffmpeg at the same time: on 2 cores a 5 s 320x240 clip converted in 56 ms with
    one decoder thread against 66 ms with two, while from 480x360 up more threads won."""
    cv2 = cv2_module()
    path = os.fspath(path)
    if threads is None:
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        size = math.prod(cap.get(p) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT,
                                               cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or 0 < size < SMALL_CLIP:  # an unknown count (NaN, 0, negative) counts as large
            return cap
        cap.release()
        threads = 0
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads] if threads else [])


def _decode_opencv(path, gray, extra_channels, on_fps, alloc, threads):
    cv2 = cv2_module()
    cap = _open_capture(path, threads)
    try:
        if not cap.isOpened():
            return None, 0, None
        ok, frame = cap.read()
        if not ok:
            return None, 0, None
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not (fps and np.isfinite(fps) and 0 < fps < 1000):
            fps = 25.0
        if on_fps:
            on_fps(float(fps))
        height, width = frame.shape[:2]
        n_out = (1 if gray else 3) + extra_channels
        frame_bytes = height * width * n_out
        claimed = cap.get(cv2.CAP_PROP_FRAME_COUNT)  # NaN or negative when unknown (piped mkv, raw h264)
        capacity = int(min(claimed if np.isfinite(claimed) else 1, initial_frames_limit_bytes() // frame_bytes))
        capacity = max(capacity, 1)
        out = alloc((capacity, height, width, n_out))
        bgr_to_rgb = [0, 2, 1, 1, 2, 0]  # mixChannels pairs: B->2, G->1, R->0
        n = 0
        while ok:
            if frame.shape[:2] != (height, width):  # a stream that changes size mid-way
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            if n == capacity:  # the container under-counted: grow (rare)
                grown = np.empty((2 * capacity, *out.shape[1:]), np.uint8)
                grown[:capacity] = out
                out, capacity = grown, 2 * capacity
            if gray:
                out[n, :, :, 0] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            else:
                cv2.mixChannels([frame], [out[n]], bgr_to_rgb)  # writes in place, swapping B and R
            n += 1
            ok, frame = cap.read(frame)  # reuses the one frame buffer, hot in cache
    finally:
        cap.release()
    return out, n, float(fps)


def count_frames(path):
    """Frames that decode, counted by the same decoder decode_video uses, without keeping them."""
    cv2 = cv2_module()
    cap = cv2.VideoCapture(os.fspath(path), cv2.CAP_FFMPEG)
    try:
        n = 0
        if cap.isOpened():
            while cap.grab():  # grab decodes but skips the colour conversion and the copy out
                n += 1
    finally:
        cap.release()
    return n if n else video_stream_length(path, decode=True)[0]


def _decode_ffmpeg(path):
    proc = run_ffmpeg(["-i", input_arg(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
                      check=False)
    info = parse_stream_info(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError("no video stream" if info.has_audio and not info.has_video else ffmpeg_error(proc.stderr))
    out = parse_stream_info(proc.stderr.decode("utf-8", "replace").split("Output #0", 1)[-1], 0)
    # the output stream's size is the truth: it is after ffmpeg applied any rotation
    width, height = out.width or info.width, out.height or info.height
    if not width or not height:
        raise RuntimeError("could not read the frame size")
    n = len(proc.stdout) // (width * height * 3)
    if n == 0:
        raise RuntimeError("no frame decodes")
    frames = np.frombuffer(proc.stdout, np.uint8, count=n * width * height * 3).reshape(n, height, width, 3)
    fps = info.fps if info.fps and info.fps > 0 else (n / info.duration if info.duration else 25.0)
    return frames, float(fps)


def decode_audio(path, sample_rate):
    """The first audio track mixed down to mono float32 at `sample_rate`, or None when there is none."""
    # aresample's first_pts=0 pads a track that starts after the picture with silence, so sample 0
    # is time 0 like frame 0
    proc = run_ffmpeg(["-i", input_arg(path), "-map", "0:a:0?", "-vn", "-sn", "-dn",
                       "-af", "aresample=async=1:first_pts=0",
                       "-ac", "1", "-ar", str(int(sample_rate)), "-f", "f32le", "pipe:1"], check=False)
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace")
        if "does not contain any stream" in text or "matches no streams" in text:
            return None
        raise RuntimeError(ffmpeg_error(proc.stderr))
    if not parse_stream_info(proc.stderr).has_audio:
        return None
    return np.frombuffer(proc.stdout, np.float32).copy()


_STATS = re.compile(r"frame=\s*(\d+).*?time=\s*(-?[\d:.]+|N/A)")


def video_stream_length(path, *, decode=False):
    """(frames, seconds, errors) of the first video stream: packets as stored (fast, demux only),
    or with decode=True the frames that really decode plus every error the decoder reported."""
    args = ["-v", "error", "-stats", "-i", input_arg(path), "-map", "0:v:0"]
    args += ([] if decode else ["-c", "copy"]) + ["-f", "null", "-"]
    proc = run_ffmpeg(args, check=False)
    text = proc.stderr.decode("utf-8", "replace").replace("\r", "\n")
    stats = _STATS.findall(text)
    errors = [ln.strip() for ln in text.splitlines() if ln.strip() and not _STATS.search(ln)]
    if proc.returncode != 0 or not stats:
        raise RuntimeError("ffmpeg: " + (errors[-1] if errors else "cannot read the video stream"))
    frames, clock = stats[-1]
    seconds = None
    if clock != "N/A":
        h, m, sec = clock.split(":")
        seconds = abs(int(h)) * 3600 + int(m) * 60 + float(sec)
    return int(frames), seconds, errors


def resized_names(videos):
    """{video: its resized sibling}: resized_<stem>.mp4, or resized_<name>.mp4 for a non-mp4 video
    whose stem another video in the same folder shares (a.mp4 + a.avi -> resized_a.mp4 + resized_a.avi.mp4).
    Videos that would still clash are left out: nothing is ever written over another's output."""
    names = {}
    for v in videos:
        v = Path(v)
        names[v] = v.with_name(f"{RESIZED_PREFIX}{v.stem}.mp4")
    taken = {}
    for v, out in names.items():
        taken.setdefault(out, []).append(v)
    for out, group in taken.items():
        if len(group) > 1:
            for v in group:
                if v.suffix != ".mp4":
                    names[v] = v.with_name(f"{RESIZED_PREFIX}{v.name}.mp4")
    counts = {}
    for out in names.values():
        counts[out] = counts.get(out, 0) + 1
    return {v: out for v, out in names.items() if counts[out] == 1}


def is_resized(path):
    return Path(path).name.startswith(RESIZED_PREFIX)


TEST_CODECS = {".mp4": ("libx264", "aac"), ".mov": ("libx264", "aac"), ".mkv": ("libx264", "aac"),
               ".avi": ("mpeg4", "libmp3lame"), ".webm": ("libvpx", "libvorbis")}


def write_test_video(path, *, seconds=2.0, size=(160, 120), fps=30, audio="0.5*sin(2*PI*440*t)",
                     sample_rate=44100, channels=1, extra=()):
    """A test-pattern video with a sound given as an ffmpeg aevalsrc expression of t (None: no
    sound track), for tests and benchmarks; the codecs follow the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec = TEST_CODECS.get(path.suffix.lower(), ("libx264", "aac"))
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}"]
    if audio is not None:
        args += ["-f", "lavfi", "-i", f"aevalsrc={'|'.join([audio] * channels)}:s={sample_rate}:d={seconds}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"] + (["-preset", "ultrafast"] if vcodec == "libx264" else [])
    args += (["-c:a", acodec] if audio is not None else []) + [*extra, input_arg(path)]
    run_ffmpeg(args)
    return path


# ----------------------------------------------------------------------------- files

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


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary name is hidden and ends in `.part`, so no step ever takes it for a finished file.
    """
    import signal
    import threading

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


# ----------------------------------------------------------------------------- the run loop

def check_target_dir(parser, target):
    if not Path(target).is_dir():
        parser.error(f"--target {target}: no such folder")


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


def progress(iterable, total, desc):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="file", disable=None, leave=False, file=sys.stderr)


def run_jobs(fn, items, *, jobs=1, desc="", processes=False):
    """Call fn(item) for each item (in `jobs` workers) with a progress bar.

    fn returns a status word, or (status word, value). A failing item prints one line naming it
    and the reason, and the run goes on. Returns ({status: count}, {item: value}, [failed items]).
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

    from tqdm import tqdm

    counts, values, failed = {}, {}, []

    def record(item, result=None, err=None):
        if err is not None:
            tqdm.write(fail_line(item, err), file=sys.stderr)
            failed.append(item)
            status = "failed"
        elif isinstance(result, tuple):
            status, values[item] = result
        else:
            status = result
        counts[status] = counts.get(status, 0) + 1

    if jobs <= 1 or len(items) <= 1:
        for item in progress(items, len(items), desc):
            try:
                result = fn(item)
            except Exception as e:  # one bad file must not stop the others
                record(item, err=e)
            else:
                record(item, result)
        return counts, values, failed
    if processes:
        pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_signals)
    else:
        pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(fn, item): item for item in items}
        for fut in progress(as_completed(futures), len(futures), desc):
            try:
                result = fut.result()
            except Exception as e:
                record(futures[fut], err=e)
            else:
                record(futures[fut], result)
    except KeyboardInterrupt:
        if processes:  # stop the workers now; their SIGTERM handler lets atomic_output clean up
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C stops now, not after the queue
        raise
    pool.shutdown()
    return counts, values, failed


def _worker_signals():
    """In a worker process: Ctrl-C reaches the whole process group, but the parent decides (an idle
    worker hit by SIGINT would print a traceback); SIGTERM from the parent unwinds the task, so
    temporary files are removed, and exits quietly."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)


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


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_shard(text):
    """'i/n' -> (i, n), with 0 <= i < n; an argparse type."""
    import argparse

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


def warn(path, message):
    from tqdm import tqdm

    tqdm.write(f"warning: {show_path(path)}: {message}", file=sys.stderr)


def summary(counts, order):
    """One line such as 'converted 118, skipped 2 (up to date), failed 1'."""
    known = {key for key, _ in order} | {"failed"}
    parts = [f"{word} {counts.get(key, 0)}" for key, word in order]
    parts += [f"{k} {v}" for k, v in sorted(counts.items()) if k not in known]
    return ", ".join(parts + [f"failed {counts.get('failed', 0)}"])


def apply_deletions(decisions, *, dry_run=False):
    """decisions: (path, None) to delete or (path, reason) to keep. Prints a line per kept file
    (and per deletion on a dry run), deletes, and returns ({status: count}, [paths that failed])."""
    counts, failed = {"deleted": 0, "kept": 0}, []
    for path, reason in decisions:
        if reason is not None:
            print(f"kept {show_path(path)}: {reason}")
            counts["kept"] += 1
        elif dry_run:
            print(f"would delete {show_path(path)}")
            counts["deleted"] += 1
        else:
            try:
                os.unlink(path)  # unlink removes a link itself, never what it points to
            except OSError as e:
                print(fail_line(path, e.strerror or e), file=sys.stderr)
                failed.append(path)
            else:
                counts["deleted"] += 1
    counts["failed"] = len(failed)
    return counts, failed


def deletion_summary(counts, dry_run):
    verb = "would delete" if dry_run else "deleted"
    return f"{verb} {counts['deleted']}, kept {counts['kept']}, failed {counts['failed']}"
