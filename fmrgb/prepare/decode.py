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
what OpenCV cannot open, and a main stream that is not the first (decoders: the two passes).
With `keep=N` only N frames are made (timeline.stretch_plan), as the video is read, so memory
does not grow with its length; without it, a video that needs more memory than is available is
refused up front (NotEnoughMemory).
"""
import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fmrgb.prepare import decoders, framesinks
from fmrgb.prepare.ffmpeg import (display_matrix, ffmpeg_error, first_video_stream, input_arg, main_video_stream,
                          parse_stream_info, probe, run_ffmpeg)
from fmrgb.prepare.memory import check_memory
from fmrgb.prepare.orientation import mirror_in_place, opencv_mirror_axis
from fmrgb.prepare.timeline import StretchPlan, stretch_plan

COUNT_CHANGED = "the video decodes to a different number of frames each time"


@dataclasses.dataclass(frozen=True)
class VideoFacts:
    fps: float
    frames: int  # frames of the main video stream that decoded (a record's source_frames)
    damaged: int  # frames that failed to decode between others and were skipped
    start: float  # seconds from the file's start (sample 0 of the sound) to the first frame
    sample_rate: int | None  # the rate the sound was decoded at
    source_shape: tuple = None  # (height, width) of the decoded picture, before any --size


@dataclasses.dataclass(frozen=True)
class Media:
    frames: np.ndarray  # uint8 (T, H, W, P + extra): the picture (RGB or grey) then room for the caller
    audio: np.ndarray | None  # mono float32 at facts.sample_rate, sample 0 at the file's start
    facts: VideoFacts
    plan: StretchPlan | None  # with keep=N: which source frames each of the N frames is made of


# ----------------------------------------------------------------------------- the sound

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
    if not info.has_audio:
        return info, None
    return info, np.frombuffer(proc.stdout, np.float32).copy()


def decode_audio(path, sample_rate):
    """The first audio track mixed down to mono float32 at `sample_rate`, or None when there is none."""
    return decode_sound(path, sample_rate)[1]


# ----------------------------------------------------------------------------- the decoder choice

@dataclasses.dataclass(frozen=True)
class _Layout:
    """How the frames of one decode_media call are stored."""
    n_pic: int  # picture channels: 3 (RGB) or 1 (grey)
    channels: int  # the picture's and the caller's
    keep: int | None  # frames to make (a stretched clip), or None for all
    scratch: object  # a ScratchBuffer the frames live in, or None
    reusable: int  # bytes the scratch buffer held before this call
    size: int | None = None  # frames stored at size x size (framesinks.Shrinking), or as they decode

    def make_sink(self, claimed, area, exact=None):
        """The sink for a pass over `claimed` frames (`exact`: the count known to be true) of `area` pixels."""
        stored = area if self.size is None else self.size * self.size
        check_memory(self.keep or claimed or 0, stored * self.channels, reusable=self.reusable, keep=self.keep)
        alloc = self.scratch.take if self.scratch is not None else framesinks.new_frame_array
        n_in = exact or claimed  # a wrong claim costs a second pass, never a wrong clip
        if self.keep is None:
            sink = framesinks.KeepAll(alloc, claimed, self.channels, scratch=self.scratch is not None)
        elif not n_in:
            return framesinks.Count()
        else:
            sink = framesinks.Selection(alloc, stretch_plan(n_in, self.keep), self.channels, self.n_pic)
        return sink if self.size is None else framesinks.Shrinking(sink, self.size, self.n_pic)


def _opencv_with_sound_beside(path, threads, layout, sample_rate_for):
    """OpenCV's pass, with ffmpeg beside it on the other core reading the sound at the rate chosen
    for the frame rate OpenCV reports (or, without sound wanted, the stream facts).
    Returns (the pass or None, MediaInfo, the sound's rate or None, the sound or None)."""
    with ThreadPoolExecutor(1) as pool:
        side = []

        def on_open(fps):
            rate = sample_rate_for(fps) if sample_rate_for else None
            job = pool.submit(decode_sound, path, rate) if rate else pool.submit(probe, path)
            side.append((rate, job))

        got = decoders.opencv_pass(path, threads, layout.make_sink, layout.n_pic, on_open)
        if not side:  # OpenCV could not open it
            return got, probe(path), None, None
        rate, job = side[0]
        if rate:
            info, audio = job.result()
        else:
            info, audio = job.result(), None
    return got, info, rate, audio


def _check_opencv_pass(got, path, info, stream):
    """(OpenCV's pass, or None where ffmpeg must decode instead; the frames ffmpeg decodes, if
    counted; the frames lost to damage when ffmpeg decodes instead)."""
    if got is None or stream is None:
        return got, None, 0
    if stream.index != first_video_stream(info).index:
        return None, None, 0  # OpenCV read the first video stream, and that is not the main one
    if not got.damaged:
        return got, None, 0
    counted = decoders.ffmpeg_count(path, stream.index)
    if counted > got.frames:  # ffmpeg decodes more of the damaged stream; fewer are lost
        return None, counted, max(1, got.damaged - (counted - got.frames))
    return got, counted, 0


def _with_true_count(got, path, threads, layout):
    """With keep=N the plan needs the true frame count: where the header's count was wrong, OpenCV
    decodes again, now that the true count is known."""
    if got is None or not layout.keep:
        return got
    if isinstance(getattr(got.sink, "inner", got.sink), framesinks.Selection) and got.sink.plan.n_in == got.frames:
        return got
    first_count = got.frames
    again = decoders.opencv_pass(path, threads, functools.partial(layout.make_sink, exact=first_count),
                                 layout.n_pic)
    if again is None or again.frames != first_count:
        raise RuntimeError(COUNT_CHANGED)
    return again


def _ffmpeg_decode(path, info, stream, layout, counted):
    """The main stream decoded through ffmpeg's pipe (where OpenCV cannot, or gets fewer frames)."""
    if stream is None:
        raise RuntimeError("no video stream")
    fps = decoders.usable_fps(stream.fps)
    if layout.keep:  # the plan needs the true count first
        claimed = counted or decoders.ffmpeg_count(path, stream.index)
        exact = claimed
    else:
        claimed = round(info.duration * fps) if info.duration else None
        exact = None
    got = decoders.ffmpeg_pass(path, stream.index, functools.partial(layout.make_sink, exact=exact),
                               layout.n_pic, claimed, fps)
    if layout.keep and got.frames != claimed:
        raise RuntimeError(COUNT_CHANGED)
    return got


def decode_media(path, *, sample_rate_for=None, gray=False, extra_channels=0, keep=None, scratch=None,
                 threads=None, size=None):
    """Decode the main video stream's frames and (with `sample_rate_for(fps)`) the sound; a Media.

    frames: uint8 [T, H, W, P + extra_channels], contiguous, the picture in the first P channels
    (RGB, or P = 1 grey = ITU-R 601 luma), the rest left to the caller, so the output is written
    once. keep=N: N frames (timeline.stretch_plan of all that decode), made as the video is read.
    size=S: every frame stored at S x S (framesinks.Shrinking: as training resizes), made as it is read.
    With a `scratch` (ScratchBuffer) the frames are a view of its memory, valid until its next use.
    `threads`: OpenCV's decoder threads, 0 for its default, None to choose by the clip's size.
    """
    path = Path(path).absolute()
    n_pic = 1 if gray else 3
    layout = _Layout(n_pic, n_pic + extra_channels, keep, scratch, scratch.size if scratch is not None else 0, size)
    got, info, rate, audio = _opencv_with_sound_beside(path, threads, layout, sample_rate_for)
    stream = main_video_stream(info, path)
    got, counted, damaged = _check_opencv_pass(got, path, info, stream)
    got = _with_true_count(got, path, threads, layout)
    mirror = None
    if got is not None and stream is not None:  # OpenCV's picture: it does not mirror as a player does
        mirror = opencv_mirror_axis(display_matrix(path, stream.index))
    if got is None:
        got = _ffmpeg_decode(path, info, stream, layout, counted)
        if sample_rate_for and sample_rate_for(got.fps) != rate:  # the sound's rate follows ffmpeg's fps
            rate = sample_rate_for(got.fps)
            audio = decode_sound(path, rate)[1]
    start = 0.0
    if stream is not None and stream.start is not None:
        start = stream.start - info.start
    frames = got.sink.frames(got.frames)
    shape = getattr(got.sink, "source_shape", frames.shape[1:3])
    facts = VideoFacts(got.fps, got.frames, got.damaged or damaged, max(0.0, start), rate, tuple(map(int, shape)))
    plan = got.sink.plan if keep else None
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
    stream = main_video_stream(info, path)
    if stream is None:
        raise RuntimeError("no video stream")
    if stream.index == first_video_stream(info).index:
        got = decoders.opencv_pass(path, None, lambda claimed, area: framesinks.Count(), 1)
        if got is not None and got.damaged:
            return max(got.frames, decoders.ffmpeg_count(path, stream.index))
        if got is not None:
            return got.frames
    n = decoders.ffmpeg_count(path, stream.index)
    if n == 0:
        raise RuntimeError("no frame decodes")
    return n
