"""Time along a clip: where each frame of a stretched clip comes from, and what time it shows.

    plan = stretch_plan(45, 30)     # output frame j: source frames lo[j], hi[j], weight w[j], nearest[j]
    seconds = frame_times(30, fps=30.0, source_frames=45)   # the source time each stored frame shows
    clip = stretch_time(frames, 30, sound_channels=2, planes=2)   # a (45, H, W, C) clip brought to 30 frames
    lo, hi = plan.spans()           # output frame j stands for the source frames lo[j] .. hi[j] - 1

A clip of n_in frames brought to n_out takes the coordinates scipy.ndimage.zoom(order=1) uses:
output frame j sits at source position j * (n_in - 1) / (n_out - 1), first and last frames kept.
The picture is blended linearly between the two source frames around it; the sound channels take
the nearest source frame, so they only ever hold values the sound had, except the planes (amplitude,
frequency) of a shortened clip: each describes its frame's whole span (sound.span_sound), and so does a
mel image where the span is longer than the second an image shows (sound.span_mel).
"""
import dataclasses

import numpy as np

from fmrgb.prepare.sound import span_mel, span_sound

STRETCH_CHUNK = 16  # frames blended at once: bounds the float copy, whatever the video's length


def source_positions(n_in, n_out):
    """Where each of n_out output frames sits among n_in source frames (float64, 0 .. n_in - 1)."""
    if n_out <= 1 or n_in <= 1:
        return np.zeros(max(n_out, 0))
    return np.linspace(0, n_in - 1, n_out)


@dataclasses.dataclass(frozen=True)
class StretchPlan:
    """Output frame j = (1 - w[j]) * source[lo[j]] + w[j] * source[hi[j]] for the picture, and
    source[nearest[j]] for the sound channels."""
    n_in: int
    lo: np.ndarray  # int64 (n_out,)
    hi: np.ndarray  # int64 (n_out,), lo or lo + 1
    w: np.ndarray  # float32 (n_out,)
    nearest: np.ndarray  # int64 (n_out,)

    @property
    def n_out(self):
        return len(self.lo)

    def spans(self):
        """(lo, hi) int64 (n_out,): output frame j stands for the source frames [lo[j], hi[j]), those
        nearer to it than to any other output frame (at least its nearest one): where fewer frames are
        kept, every source frame's sound is in one of them (sound.span_sound)."""
        n_out = self.n_out
        if n_out <= 1:
            return np.zeros(n_out, np.int64), np.full(n_out, self.n_in, np.int64)
        owner = np.floor(np.arange(self.n_in) * ((n_out - 1) / max(self.n_in - 1, 1)) + 0.5).astype(np.int64)
        j = np.arange(n_out)
        lo = np.minimum(np.searchsorted(owner, j, "left"), self.nearest)
        return lo, np.maximum(np.searchsorted(owner, j, "right"), self.nearest + 1)


def stretch_plan(n_in, n_out):
    pos = source_positions(n_in, n_out)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (pos - lo).astype(np.float32)
    return StretchPlan(int(n_in), lo, hi, w, np.floor(pos + 0.5).astype(np.int64))


def blend(lo_frames, hi_frames, w):
    """The picture of output frames: (1 - w) * lo + w * hi for uint8 frames (k, ...), rounded to
    uint8. The one formula for every stretch (of a record, or while decoding), so both agree bit for bit."""
    wk = np.asarray(w, np.float32).reshape(-1, *([1] * (lo_frames.ndim - 1)))
    mixed = lo_frames.astype(np.float32) * (1 - wk) + hi_frames.astype(np.float32) * wk
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def frame_times(n_frames, fps, source_frames=None):
    """The time in the source video (seconds from its first frame) each of a record's n_frames
    frames shows: frame j of a clip stretched from source_frames frames shows source position
    source_positions(source_frames, n_frames)[j], at fps."""
    if not source_frames or source_frames == n_frames:
        return np.arange(n_frames) / fps
    return source_positions(int(source_frames), n_frames) / fps


def stretch_time(frames, n_out, *, sound_channels=0, planes=0, mel_window=None):
    """Resampling along time to `n_out` frames at the coordinates scipy.ndimage.zoom(order=1) uses
    (stretch_plan: first and last frames kept): the picture blended linearly between the
    two frames around each position, the last `sound_channels` channels (a record's sound: pass
    SOUND_CHANNELS) taken from the nearest frame, so they hold only values the sound had; of them
    the first `planes` (1: amplitude; 2: amplitude and frequency) describe each output frame's whole
    span (StretchPlan.spans, sound.span_sound), as a --frames conversion makes them. With `mel_window`
    (sound.mel_window: the frames one mel image spans) and planes=1, the last channel is a mel image and
    a span longer than that shows its whole span (sound.span_mel). In bounded-size chunks, so no float
    copy of the whole video is made."""
    n_in = frames.shape[0]
    if n_in == n_out:
        return frames
    plan = stretch_plan(n_in, n_out)
    n_pic = frames.shape[-1] - sound_channels
    out = np.empty((n_out, *frames.shape[1:]), np.uint8)
    for start in range(0, n_out, STRETCH_CHUNK):  # chunks of frames, not single frames: memory, not speed
        sl = slice(start, start + STRETCH_CHUNK)
        out[sl, ..., :n_pic] = blend(frames[plan.lo[sl], ..., :n_pic], frames[plan.hi[sl], ..., :n_pic], plan.w[sl])
        if sound_channels:
            out[sl, ..., n_pic:] = frames[plan.nearest[sl], ..., n_pic:]
    if planes:
        values = np.asarray(frames[:, 0, 0, n_pic:n_pic + planes])  # one value per frame fills each plane
        amp, freq = span_sound(values[:, 0], values[:, 1] if planes > 1 else None, *plan.spans())
        out[..., n_pic] = amp[:, None, None]
        if freq is not None:
            out[..., n_pic + 1] = freq[:, None, None]
    if mel_window and planes == 1 and sound_channels == 2:
        long, images = span_mel(lambda idx: frames[idx, ..., -1], *plan.spans(), mel_window, frames.shape[1:3])
        out[long, ..., -1] = images
    return out
