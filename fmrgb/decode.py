"""Decoding: ffmpeg (from the imageio-ffmpeg wheel) and OpenCV turn a file into frames and sound.

    frames, fps = decode_video("clip.mp4")          # uint8 (T, H, W, 3), every frame that decodes
    audio = decode_audio("clip.mp4", 3000)          # mono float32 at 3000 Hz, or None without sound

ffmpeg is always called with an argument list (never a shell), `-nostdin`, captured output and a
timeout; a failure is re-raised with ffmpeg's own last words.
"""
import dataclasses
import functools
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np

# OpenCV's bundled FFmpeg would print its own warnings for every broken file; ours say it once
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

FFMPEG_TIMEOUT = 600  # seconds; a 10 s clip takes well under one, so this only catches hangs
PROBE_TIMEOUT = 60  # seconds for reading a container's header
SMALL_CLIP = 20_000_000  # width x height x frames below which one decoder thread is faster
DEFAULT_FPS = 25.0  # when a container states no usable frame rate


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
    proc = run_ffmpeg(["-i", input_arg(path)], check=False, timeout=PROBE_TIMEOUT)
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
    """One block of memory reused for the decoded frames of video after video: a fresh array per
    clip would cost page faults and zeroing in the kernel every time. Not for sharing between threads."""

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


def _open_capture(path, threads):
    """A VideoCapture with `threads` decoder threads (0: OpenCV's default), or with None one thread
    for a clip smaller than SMALL_CLIP and the default for a larger one: a conversion decodes the
    sound in ffmpeg at the same time, and on small clips extra decoder threads only contend with it."""
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
            fps = DEFAULT_FPS
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
    fps = info.fps if info.fps and info.fps > 0 else (n / info.duration if info.duration else DEFAULT_FPS)
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
