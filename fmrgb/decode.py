"""Decoding: a file's main video stream into frames, and its sound into a mono track.

    media = decode_media("clip.mp4", sample_rate_for=lambda fps: round(fps * 100))
    media.frames, media.audio, media.facts    # uint8 (T, H, W, C), float32 or None, VideoFacts
    frames, fps = decode_video("clip.mp4")    # uint8 (T, H, W, 3), every frame that decodes
    audio = decode_audio("clip.mp4", 3000)    # mono float32 at 3000 Hz, or None without sound
    n = decoded_frame_count("clip.mp4")       # the frames decode_media takes: a record's source_frames

The frames are those of the main video stream (ffmpeg.main_video_stream) that decode. OpenCV
decodes in-process, several times faster than piping raw frames out of ffmpeg, but only the first
video stream, and a damaged frame ends its read loop: so reading goes on past failed reads, and
where some failed ffmpeg counts too and decodes instead when it gets more. ffmpeg also decodes
what OpenCV cannot open, and a main stream that is not the first. With `keep=N` only N frames are
made (timeline.stretch_plan), as the video is read, so memory does not grow with its length;
without it, a video that needs more memory than is available is refused up front (NotEnoughMemory).
"""
import dataclasses
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fmrgb.ffmpeg import display_matrix
from fmrgb.ffmpeg import (FFMPEG_TIMEOUT, FfmpegRun, MediaInfo, ffmpeg_error, ffmpeg_exe,  # noqa: F401 (callers
                          first_video_stream, input_arg, main_video_stream, parse_stream_info,  # import these
                          probe, run_ffmpeg, timeout_for, video_map, video_stream_length)  # from here)
from fmrgb.memory import NotEnoughMemory, ScratchBuffer, check_memory  # noqa: F401 (callers import them from here)
from fmrgb.orientation import mirror_in_place, opencv_mirror_axis
from fmrgb.timeline import StretchPlan, blend, stretch_plan

# OpenCV's bundled FFmpeg would print its own warnings for every broken file; ours say it once
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

SMALL_CLIP = 20_000_000  # width x height x frames below which one decoder thread is faster
DEFAULT_FPS = 25.0  # when a container states no usable frame rate
RETRY_READS = 64  # failed reads in a row taken as the end of the stream (one costs ~10 us there)
MAX_RETRY_READS = 100_000  # however many frames a header claims are still to come
BGR_TO_RGB = [0, 2, 1, 1, 2, 0]  # cv2.mixChannels pairs: B->2, G->1, R->0


@dataclasses.dataclass(frozen=True)
class VideoFacts:
    fps: float
    frames: int  # frames of the main video stream that decoded (a record's source_frames)
    damaged: int  # frames that failed to decode between others and were skipped
    start: float  # seconds from the file's start (sample 0 of the sound) to the first frame
    sample_rate: int | None  # the rate the sound was decoded at


@dataclasses.dataclass(frozen=True)
class Media:
    frames: np.ndarray  # uint8 (T, H, W, P + extra): the picture (RGB or grey) then room for the caller
    audio: np.ndarray | None  # mono float32 at facts.sample_rate, sample 0 at the file's start
    facts: VideoFacts
    plan: StretchPlan | None  # with keep=N: which source frames each of the N frames is made of


@functools.lru_cache(maxsize=1)
def cv2_module():
    import cv2

    return cv2


def new_frame_array(shape):
    """Every frame array decoding makes that is not a ScratchBuffer's (tests watch their sizes)."""
    return np.empty(shape, np.uint8)


# ----------------------------------------------------------------------------- where frames go

def initial_frames_limit_bytes():
    """A header may under-count or over-count: the first array is at most half the machine's
    memory (beyond it, the array grows as frames come)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


class _Count:
    """Frames counted, none kept."""

    def start(self, height, width):
        pass

    def wants(self, n):
        return False

    def done(self, n):
        pass


class _KeepAll:
    """Every frame, in an array sized by the header's count that grows when the header under-counted."""

    def __init__(self, alloc, claimed, channels, *, scratch):
        self.alloc, self.claimed, self.channels, self.scratch = alloc, claimed, channels, scratch

    def start(self, height, width):
        frame_bytes = height * width * self.channels
        capacity = max(1, min(self.claimed or 1, initial_frames_limit_bytes() // frame_bytes))
        self.out = self.alloc((capacity, height, width, self.channels))

    def wants(self, n):
        return True

    def slot(self, n):
        if n == len(self.out):  # the container under-counted: grow (rare)
            check_memory(len(self.out), self.out[0].nbytes)
            grown = new_frame_array((2 * len(self.out), *self.out.shape[1:]))
            grown[:n] = self.out
            self.out = grown
        return self.out[n]

    def done(self, n):
        pass

    def frames(self, n):
        # the first n frames, a contiguous view; copied out when the buffer is larger than they are
        # and is not a scratch buffer, so the unused rest is not kept alive with them
        return self.out[:n] if self.scratch or n == len(self.out) else self.out[:n].copy()


class _Selection:
    """The plan's output frames, blended from the two source frames around each as the video goes
    by: only the output and two source frames are ever held."""

    def __init__(self, alloc, plan, channels, n_pic):
        self.alloc, self.plan, self.channels, self.n_pic = alloc, plan, channels, n_pic
        self.needed, self.k = np.union1d(plan.lo, plan.hi), 0

    def start(self, height, width):
        self.out = self.alloc((self.plan.n_out, height, width, self.channels))
        self.ring = new_frame_array((2, height, width, self.n_pic))

    def wants(self, n):
        while self.k < len(self.needed) and self.needed[self.k] < n:
            self.k += 1
        return self.k < len(self.needed) and self.needed[self.k] == n

    def slot(self, n):
        return self.ring[n % 2]

    def done(self, n):
        plan = self.plan
        js = slice(np.searchsorted(plan.hi, n, "left"), np.searchsorted(plan.hi, n, "right"))
        if js.start < js.stop:  # outputs between frame n - 1 (or n itself, at the end) and frame n
            self.out[js, ..., :self.n_pic] = blend(self.ring[plan.lo[js] % 2], self.ring[n % 2][None], plan.w[js])

    def frames(self, n):
        return self.out


@dataclasses.dataclass(frozen=True)
class _Pass:
    frames: int
    damaged: int
    fps: float
    sink: object


def _write_picture(frame, dst, n_pic, bgr):
    cv2 = cv2_module()
    if n_pic == 1:
        dst[..., 0] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    elif bgr:
        cv2.mixChannels([frame], [dst], BGR_TO_RGB)  # writes in place, swapping B and R
    else:
        dst[..., :3] = frame


# ----------------------------------------------------------------------------- the two decoders

def _open_capture(path, threads):
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


def _usable_fps(fps):
    return float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS


def _opencv_pass(path, threads, make_sink, n_pic, on_open=None):
    """Decode the first video stream with OpenCV into make_sink(claimed frames, frame area);
    None when OpenCV cannot open it or decodes no frame."""
    try:
        os.fspath(Path(path).absolute()).encode("utf-8")
    except UnicodeEncodeError:  # OpenCV takes names as UTF-8 and crashes on others: ffmpeg reads this one
        return None
    cv2 = cv2_module()
    cap = _open_capture(path, threads)
    try:
        if not cap.isOpened():
            return None
        fps = _usable_fps(cap.get(cv2.CAP_PROP_FPS))
        claimed = cap.get(cv2.CAP_PROP_FRAME_COUNT)  # NaN or negative when unknown (piped mkv, raw h264)
        claimed = int(claimed) if np.isfinite(claimed) and claimed > 0 else None
        sink = make_sink(claimed, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if on_open:
            on_open(fps)
        n = damaged = failures = 0
        frame = size = None
        while True:
            want = size is None or sink.wants(n)
            ok, frame = cap.read(frame) if want else (cap.grab(), frame)
            if not ok:
                # every read fails at the end; a damaged frame fails one read and the next ones decode
                failures += 1
                if failures > max(RETRY_READS, min((claimed or 0) - n, MAX_RETRY_READS)):
                    break
                continue
            damaged, failures = damaged + failures, 0
            if size is None:
                size = frame.shape[:2]
                sink.start(*size)
                want = sink.wants(n)
            if want:
                if frame.shape[:2] != size:  # a stream that changes size mid-way
                    frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                _write_picture(frame, sink.slot(n), n_pic, bgr=True)
            sink.done(n)
            n += 1
    finally:
        cap.release()
    return _Pass(n, damaged, fps, sink) if n else None


def _ffmpeg_pass(path, stream, make_sink, n_pic, claimed, fps):
    """Decode `stream` (an index) through ffmpeg's rawvideo pipe, frame by frame into make_sink."""
    run = FfmpegRun(["-i", input_arg(path), "-map", f"0:{stream}",
                     "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
    n, sink, frame, filled, early = 0, None, None, 0, []
    for chunk in run.chunks():
        if sink is None:
            text = run.stderr.decode("utf-8", "replace")
            if "Output #0" not in text:  # ffmpeg prints it before writing; wait for it all the same
                early.append(chunk)
                continue
            # the output stream's size is the truth: it is after ffmpeg applied any rotation
            out = parse_stream_info(text.split("Output #0", 1)[1])
            if not out.width or not out.height:
                raise RuntimeError("could not read the frame size")
            sink = make_sink(claimed, out.width * out.height)
            sink.start(out.height, out.width)
            frame = np.empty((out.height, out.width, 3), np.uint8)
            flat = memoryview(frame).cast("B")
            chunk, early = b"".join([*early, chunk]), []
        chunk = memoryview(chunk)
        while len(chunk):
            take = min(len(flat) - filled, len(chunk))
            flat[filled:filled + take], chunk, filled = chunk[:take], chunk[take:], filled + take
            if filled == len(flat):
                if sink.wants(n):
                    _write_picture(frame, sink.slot(n), n_pic, bgr=False)
                sink.done(n)
                n, filled = n + 1, 0
    if n == 0:
        info = parse_stream_info(run.stderr)
        raise RuntimeError("no video stream" if info.has_audio and not info.has_video
                           else ffmpeg_error(run.stderr) if run.returncode else "no frame decodes")
    return _Pass(n, 0, fps, sink)


def _ffmpeg_count(path, stream):
    """Frames of `stream` (an index) that ffmpeg decodes, damaged ones skipped as _ffmpeg_pass does."""
    try:
        return video_stream_length(path, decode=True, stream=stream, strict=False)[0]
    except RuntimeError:
        return 0


# ----------------------------------------------------------------------------- the whole file

def decode_sound(path, sample_rate):
    """(MediaInfo, the first audio track as mono float32 at `sample_rate` or None), in one ffmpeg run."""
    # aresample's first_pts=0 pads a track that starts after the file's start with silence, so
    # sample 0 is the file's start, from where the picture's start time is counted too
    proc = run_ffmpeg(["-i", input_arg(path), "-map", "0:a:0?", "-vn", "-sn", "-dn",
                       "-af", "aresample=async=1:first_pts=0",
                       "-ac", "1", "-ar", str(int(sample_rate)), "-f", "f32le", "pipe:1"], check=False)
    info = parse_stream_info(proc.stderr)
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace")
        if "does not contain any stream" in text or "matches no streams" in text:
            return info, None
        raise RuntimeError(ffmpeg_error(proc.stderr))
    return info, np.frombuffer(proc.stdout, np.float32).copy() if info.has_audio else None


def decode_audio(path, sample_rate):
    """The first audio track mixed down to mono float32 at `sample_rate`, or None when there is none."""
    return decode_sound(path, sample_rate)[1]


def decode_media(path, *, sample_rate_for=None, gray=False, extra_channels=0, keep=None, scratch=None,
                 threads=None):
    """Decode the main video stream's frames and (with `sample_rate_for(fps)`) the sound; a Media.

    frames: uint8 [T, H, W, P + extra_channels], contiguous, the picture in the first P channels
    (RGB, or P = 1 grey = ITU-R 601 luma), the rest left to the caller, so the output is written
    once. keep=N: N frames (timeline.stretch_plan of all that decode), made as the video is read.
    With a `scratch` (ScratchBuffer) the frames are a view of its memory, valid until its next use.
    `threads`: OpenCV's decoder threads, 0 for its default, None to choose by the clip's size.
    """
    path = Path(path).absolute()
    n_pic = 1 if gray else 3
    channels = n_pic + extra_channels
    alloc = scratch.take if scratch is not None else new_frame_array
    reusable = scratch.size if scratch is not None else 0

    def make_sink(claimed, area, exact=None):
        check_memory(keep or claimed or 0, area * channels, reusable=reusable, keep=keep)
        if keep is None:
            return _KeepAll(alloc, claimed, channels, scratch=scratch is not None)
        n_in = exact or claimed  # a wrong claim costs a second pass, never a wrong clip
        return _Selection(alloc, stretch_plan(n_in, keep), channels, n_pic) if n_in else _Count()

    with ThreadPoolExecutor(1) as pool:
        side = []  # ffmpeg beside OpenCV, on the other core: the sound and the stream facts

        def on_open(fps):
            rate = sample_rate_for(fps) if sample_rate_for else None
            side.append((rate, pool.submit(decode_sound, path, rate) if rate else pool.submit(probe, path)))

        got = _opencv_pass(path, threads, make_sink, n_pic, on_open)
        rate, job = side[0] if side else (None, None)
        info, audio = (job.result() if rate else (job.result(), None)) if job else (probe(path), None)
    stream, first = main_video_stream(info, path), first_video_stream(info)
    counted, damaged = None, 0  # the frames ffmpeg decodes, once counted; those lost to damage
    if got is not None and stream is not None and stream.index != first.index:
        got = None  # OpenCV read the first video stream, and that is not the main one
    elif got is not None and got.damaged and stream is not None:
        counted = _ffmpeg_count(path, stream.index)
        if counted > got.frames:  # ffmpeg decodes more of the damaged stream; fewer are lost
            got, damaged = None, max(1, got.damaged - (counted - got.frames))
    if got is not None and keep and not (isinstance(got.sink, _Selection) and got.sink.plan.n_in == got.frames):
        first_count = got.frames  # the header's count was wrong: again, now that the true count is known
        got = _opencv_pass(path, threads, functools.partial(make_sink, exact=first_count), n_pic)
        if got is None or got.frames != first_count:
            raise RuntimeError("the video decodes to a different number of frames each time")
    mirror = None
    if got is not None and stream is not None:  # OpenCV's picture: it does not mirror as a player does
        mirror = opencv_mirror_axis(display_matrix(path, stream.index))
    if got is None:
        if stream is None:
            raise RuntimeError("no video stream")
        fps = _usable_fps(stream.fps)
        if keep:  # the plan needs the true count first
            claimed = counted or _ffmpeg_count(path, stream.index)
        else:
            claimed = round(info.duration * fps) if info.duration else None
        got = _ffmpeg_pass(path, stream.index, functools.partial(make_sink, exact=claimed if keep else None),
                           n_pic, claimed, fps)
        if keep and got.frames != claimed:
            raise RuntimeError("the video decodes to a different number of frames each time")
        if sample_rate_for and sample_rate_for(fps) != rate:
            rate = sample_rate_for(fps)
            audio = decode_sound(path, rate)[1]
    start = stream.start - info.start if stream is not None and stream.start is not None else 0.0
    facts = VideoFacts(got.fps, got.frames, got.damaged or damaged, max(0.0, start), rate)
    plan = got.sink.plan if keep else None
    frames = got.sink.frames(got.frames)
    if mirror:
        mirror_in_place(frames, mirror, n_pic)
    return Media(frames, audio, facts, plan)


def decode_video(path, *, gray=False, extra_channels=0, scratch=None, threads=None):
    """(frames uint8 [T, H, W, P + extra_channels], fps): decode_media without the sound."""
    media = decode_media(path, gray=gray, extra_channels=extra_channels, scratch=scratch, threads=threads)
    return media.frames, media.facts.fps


def decoded_frame_count(path):
    """The frames decode_media takes from `path` (a record's source_frames), counted without keeping
    them, by the same rule: the main stream, damaged frames skipped, ffmpeg where it gets more.
    What every step compares a record or a resized copy with."""
    path = Path(path).absolute()
    info = probe(path)
    stream, first = main_video_stream(info, path), first_video_stream(info)
    if stream is None:
        raise RuntimeError("no video stream")
    if stream.index == first.index:
        got = _opencv_pass(path, None, lambda claimed, area: _Count(), 1)
        if got is not None:
            return max(got.frames, _ffmpeg_count(path, stream.index)) if got.damaged else got.frames
    n = _ffmpeg_count(path, stream.index)
    if n == 0:
        raise RuntimeError("no frame decodes")
    return n


count_frames = decoded_frame_count  # the scan's name for it
