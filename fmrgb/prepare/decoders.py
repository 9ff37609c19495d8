"""The two decoders of a video stream, each one pass over it into a frame sink (framesinks):
OpenCV in-process (the first video stream only) and ffmpeg's rawvideo pipe (any stream).

    got = opencv_pass("clip.mp4", None, make_sink, n_pic=3)       # a Pass, or None: OpenCV cannot
    got = ffmpeg_pass("clip.mp4", 1, make_sink, 3, claimed, fps)   # a Pass; RuntimeError: no frame
    n = ffmpeg_count("clip.mp4", 1)                                # frames ffmpeg decodes, 0 if none

make_sink(claimed frames or None, frame area in pixels) gives the sink, once the frame size is
known. Which decoder's pass is kept is decode.decode_media's choice.
"""
import dataclasses
import functools
import math
import os
from pathlib import Path

import numpy as np

from fmrgb.prepare.ffmpeg import FfmpegRun, ffmpeg_error, input_arg, parse_stream_info, video_stream_length

# OpenCV's bundled FFmpeg would print its own warnings for every broken file; ours say it once
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

SMALL_CLIP = 20_000_000  # width x height x frames below which one decoder thread is faster
DEFAULT_FPS = 25.0  # when a container states no usable frame rate
RETRY_READS = 64  # failed reads in a row taken as the end of the stream (one costs ~10 us there)
MAX_RETRY_READS = 100_000  # however many frames a header claims are still to come
BGR_TO_RGB = [0, 2, 1, 1, 2, 0]  # cv2.mixChannels pairs: B->2, G->1, R->0


@dataclasses.dataclass(frozen=True)
class Pass:
    """What one pass over a stream got: its frames, those that failed between others, its frame
    rate and the sink holding what was kept."""
    frames: int
    damaged: int
    fps: float
    sink: object


@functools.lru_cache(maxsize=1)
def cv2_module():
    import cv2

    return cv2


def usable_fps(fps):
    if fps and np.isfinite(fps) and 0 < fps < 1000:
        return float(fps)
    return DEFAULT_FPS


def write_picture(frame, dst, n_pic, bgr):
    cv2 = cv2_module()
    if n_pic == 1:
        dst[..., 0] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    elif bgr:
        cv2.mixChannels([frame], [dst], BGR_TO_RGB)  # writes in place, swapping B and R
    else:
        dst[..., :3] = frame


# ----------------------------------------------------------------------------- OpenCV

def open_capture(path, threads):
    """A VideoCapture with `threads` decoder threads (0: OpenCV's default), or with None one thread
    for a clip smaller than SMALL_CLIP and the default for a larger one: a conversion decodes the
    sound in ffmpeg at the same time, and on small clips extra decoder threads only contend with it."""
    cv2 = cv2_module()
    path = os.fspath(Path(path).absolute())  # relative, a first folder "a:b" would read as a protocol
    if threads is None:
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        size = math.prod(cap.get(p) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT,
                                               cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or 0 < size < SMALL_CLIP:  # an unknown count (NaN, 0, negative) counts as large
            return cap
        cap.release()
        threads = 0
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads] if threads else [])


def opencv_can_open_name(path):
    """OpenCV takes names as UTF-8 and crashes on others: ffmpeg reads those."""
    try:
        os.fspath(Path(path).absolute()).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def claimed_frames(cap):
    """The header's frame count, or None when unknown (NaN or negative: piped mkv, raw h264)."""
    claimed = cap.get(cv2_module().CAP_PROP_FRAME_COUNT)
    return int(claimed) if np.isfinite(claimed) and claimed > 0 else None


def opencv_pass(path, threads, make_sink, n_pic, on_open=None):
    """Decode the first video stream with OpenCV into make_sink(claimed frames, frame area);
    None when OpenCV cannot open it or decodes no frame. on_open(fps) is called once it is open."""
    if not opencv_can_open_name(path):
        return None
    cv2 = cv2_module()
    cap = open_capture(path, threads)
    try:
        if not cap.isOpened():
            return None
        fps = usable_fps(cap.get(cv2.CAP_PROP_FPS))
        claimed = claimed_frames(cap)
        sink = make_sink(claimed, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if on_open:
            on_open(fps)
        n, damaged = _read_frames(cap, sink, claimed, n_pic)
    finally:
        cap.release()
    return Pass(n, damaged, fps, sink) if n else None


def _read_frames(cap, sink, claimed, n_pic):
    """Read every frame of an open capture into `sink`, going on past failed reads (a damaged
    frame fails one read and the next ones decode; at the end every read fails).
    Returns (frames read, frames that failed between others)."""
    cv2 = cv2_module()
    n = damaged = failures = 0
    frame = size = None
    while True:
        want = size is None or sink.wants(n)
        if want:
            ok, frame = cap.read(frame)
        else:
            ok = cap.grab()
        if not ok:
            failures += 1
            if failures > max(RETRY_READS, min((claimed or 0) - n, MAX_RETRY_READS)):
                break
            continue
        damaged += failures
        failures = 0
        if size is None:
            size = frame.shape[:2]
            sink.start(*size)
            want = sink.wants(n)
        if want:
            if frame.shape[:2] != size:  # a stream that changes size mid-way
                frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            write_picture(frame, sink.slot(n), n_pic, bgr=True)
        sink.done(n)
        n += 1
    return n, damaged


# ----------------------------------------------------------------------------- ffmpeg

class _RawFrames:
    """Raw rgb24 bytes from ffmpeg's pipe cut into frames: the sink is made once ffmpeg has said
    the output's frame size (after any rotation it applied)."""

    def __init__(self, make_sink, n_pic, claimed):
        self.make_sink = make_sink
        self.n_pic = n_pic
        self.claimed = claimed
        self.sink = None
        self.early = []  # bytes that came before ffmpeg's listing of the output
        self.n = 0  # frames done
        self.filled = 0  # bytes of the current frame received

    def ready(self, chunk, stderr):
        """Whether the frame size is known, taking `chunk` aside until it is."""
        if self.sink is not None:
            return True
        text = stderr.decode("utf-8", "replace")
        if "Output #0" not in text:  # ffmpeg prints it before writing; wait for it all the same
            self.early.append(chunk)
            return False
        out = parse_stream_info(text.split("Output #0", 1)[1])
        if not out.width or not out.height:
            raise RuntimeError("could not read the frame size")
        self.sink = self.make_sink(self.claimed, out.width * out.height)
        self.sink.start(out.height, out.width)
        self.frame = np.empty((out.height, out.width, 3), np.uint8)
        self.flat = memoryview(self.frame).cast("B")
        return True

    def feed(self, chunk):
        chunk = memoryview(b"".join([*self.early, chunk]) if self.early else chunk)
        self.early = []
        while len(chunk):
            take = min(len(self.flat) - self.filled, len(chunk))
            self.flat[self.filled:self.filled + take] = chunk[:take]
            chunk = chunk[take:]
            self.filled += take
            if self.filled == len(self.flat):
                if self.sink.wants(self.n):
                    write_picture(self.frame, self.sink.slot(self.n), self.n_pic, bgr=False)
                self.sink.done(self.n)
                self.n += 1
                self.filled = 0


def ffmpeg_pass(path, stream, make_sink, n_pic, claimed, fps):
    """Decode `stream` (an index) through ffmpeg's rawvideo pipe, frame by frame into make_sink."""
    run = FfmpegRun(["-i", input_arg(path), "-map", f"0:{stream}",
                     "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
    raw = _RawFrames(make_sink, n_pic, claimed)
    for chunk in run.chunks():
        if raw.ready(chunk, run.stderr):
            raw.feed(chunk)
    if raw.n == 0:
        info = parse_stream_info(run.stderr)
        if info.has_audio and not info.has_video:
            raise RuntimeError("no video stream")
        raise RuntimeError(ffmpeg_error(run.stderr) if run.returncode else "no frame decodes")
    return Pass(raw.n, 0, fps, raw.sink)


def ffmpeg_count(path, stream):
    """Frames of `stream` (an index) that ffmpeg decodes, damaged ones skipped as ffmpeg_pass does."""
    try:
        return video_stream_length(path, decode=True, stream=stream, strict=False)[0]
    except RuntimeError:
        return 0
