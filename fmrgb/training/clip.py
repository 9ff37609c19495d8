"""The clip recipe: which frames of a record a model sees, at what size, normalised how, and what each
channel is. Training (dataset.py), the cache and the statistics pass (fmrgb.training.cache) and predict.py all
take their frames from here, so that they see the same numbers.

    recipe = ClipRecipe(frames=16, size=64)        # 16 time segments, 3 candidate frames in each, 64 x 64
    small = small_clip(clip, recipe)               # uint8 (T, H, W, C) -> uint8 (16 * 3, C, 64, 64)
    small[recipe.centres()]                        # evaluation: the centre of each segment (segment_indices)
    small[recipe.jittered()]                       # training: one random candidate of each segment
    x = transform(clip, frames=16, size=64, mean=mean, std=std, layout="cthw")   # one clip, as predict.py
    roles = channel_roles(["red", "green", "blue", "amplitude", "mel"])          # what fmrgb.training.augment touches

The sound planes (amplitude, frequency) of every frame of a time segment describe the whole segment
(sound.span_sound: the RMS of its amplitudes, the frequency of its loudest frame), so a short sound
between the kept frames still reaches the model; a mel image (about a second: `mel_window`, the record's
frames per second of time) stays as it is unless the segment is longer, when the segment's frames show its
whole span (sound.span_mel, as a --frames conversion makes it).

A small clip holds `steps` candidate frames per time segment, at (2k+1)/(2*steps) of it, already resized
to S x S (bilinear, antialiased, rounded to uint8); evaluation takes the middle one, the segment's centre,
training one at random (time jitter). A clip shorter than `frames` repeats frames. The frames are then
scaled from 0..255 to 0..1, each channel normalised with the training set's mean/std, in the layout the
model wants ("cthw" -> (C, T, H, W); "tchw" -> (T, C, H, W)).

A channel's role comes from its name in the record (fmrgb.prepare.sound's names):
    red, green, blue, grey   "picture"  what a crop or flip may change (fmrgb.training.augment)
    amplitude, frequency     "plane"    uniform planes: a crop or flip leaves them as they are
    mel                      "mel"      never flipped (a flip reverses time) nor cropped (a crop shifts the
                                        frequency bands)
Records without channel names (c0, c1, ...) follow FMRGB's layout: the picture, then two sound channels,
taken as "mel" (left untouched: what is safe for both kinds).
"""
import dataclasses

import numpy as np
import torch

from fmrgb.prepare.framesinks import resize  # the one resize: a --size conversion and training agree
from fmrgb.prepare.sound import AMPLITUDE, FREQUENCY, MEL, PICTURE_NAMES, PLANE_NAMES, span_mel, span_sound
from fmrgb.prepare.sound import mel_window as image_frames

LAYOUTS = ("cthw", "tchw")


# ----------------------------------------------------------------------------- which frames

def segment_indices(n, frames, offsets=None):
    """One frame index in each of `frames` equal segments of a clip of n frames: at `offsets` (frames,) or
    (k, frames) in [0, 1) of each segment, or their centres (None). A clip shorter than `frames` repeats frames."""
    offsets = torch.full((frames,), 0.5) if offsets is None else offsets
    pos = (torch.arange(frames, dtype=torch.float64) + offsets.double()) * (n / frames)
    return pos.floor().long().clamp_(0, n - 1)


def candidate_indices(n, frames, steps):
    """The frames (long, (frames * steps,)) a small clip keeps of a clip of n frames: candidate k of segment j,
    at j * steps + k, lies at (2k+1)/(2*steps) of the segment; with odd `steps` the middle one is the centre."""
    offsets = (2 * torch.arange(steps, dtype=torch.float64) + 1) / (2 * steps)  # the middle one is exactly 0.5
    return segment_indices(n, frames, offsets[:, None].expand(steps, frames)).t().reshape(-1)


def centre_candidates(frames, steps):
    """Positions in a small clip of each segment's middle candidate: segment_indices' centres (evaluation)."""
    return torch.arange(frames) * steps + steps // 2


def random_candidates(frames, steps):
    """Positions in a small clip of one random candidate of each segment (training's time jitter)."""
    return torch.arange(frames) * steps + torch.randint(steps, (frames,))


@dataclasses.dataclass(frozen=True)
class ClipRecipe:
    """What a small clip depends on besides its record: `frames` time segments, `steps` candidate
    frames in each (odd, so that the middle one is the segment's centre), `size` x `size` pixels."""
    frames: int
    size: int
    steps: int = 3

    def __post_init__(self):
        assert self.frames >= 1 and self.size >= 1, f"frames and size must be positive: {self}"
        assert self.steps >= 1 and self.steps % 2 == 1, f"steps must be odd (a middle candidate): {self.steps}"

    @property
    def length(self):
        """Frames in a small clip: frames * steps, segment by segment."""
        return self.frames * self.steps

    def indices(self, n):
        """The record frames (long, (frames * steps,)) a clip of n frames keeps (candidate_indices)."""
        return candidate_indices(n, self.frames, self.steps)

    def centres(self):
        """Positions in a small clip of each segment's centre (the evaluation's frames)."""
        return centre_candidates(self.frames, self.steps)

    def jittered(self):
        """Positions in a small clip of one random candidate per segment (training)."""
        return random_candidates(self.frames, self.steps)


# ----------------------------------------------------------------------------- the small clip

def segment_spans(n, frames):
    """(lo, hi) int64 numpy (frames,): time segment j of a clip of n frames is its frames [lo[j], hi[j]),
    the span segment_indices picks from (at least one frame: a short clip repeats them)."""
    edges = (torch.arange(frames + 1, dtype=torch.float64) * (n / frames)).floor().long().numpy()
    lo = edges[:-1].clip(max=n - 1)
    return lo, edges[1:].clip(min=lo + 1)


def span_planes(clip, frames, names):
    """{channel index: uint8 numpy (frames,)}: the amplitude and frequency planes of each time segment
    of a record clip with channel `names` (sound.span_sound over segment_spans); {} without them."""
    names = list(names or ())
    if AMPLITUDE not in names:
        return {}
    values = clip[:, 0, 0].numpy()  # one value per frame fills a plane: one pixel of each frame is read
    amp_i, freq_i = names.index(AMPLITUDE), names.index(FREQUENCY) if FREQUENCY in names else None
    amp, freq = span_sound(values[:, amp_i], None if freq_i is None else values[:, freq_i],
                           *segment_spans(clip.shape[0], frames))
    return {amp_i: amp} if freq is None else {amp_i: amp, freq_i: freq}


def record_mel_window(meta, n_frames):
    """The frames of a record of n_frames frames one mel image spans (sound.mel_window at the rate they were
    kept, from its `fps` and `source_frames`), or None for a record without an fps."""
    return image_frames(meta.get("fps"), n_frames, meta.get("source_frames"))


def span_mels(clip, picked, segment, frames, names, window):
    """The record frames `picked` (a copy, (U, H, W, C) uint8), each of time segment `segment[u]`, with the mel
    image of a segment longer than `window` frames (the frames one image spans) made to show its whole span
    (sound.span_mel over segment_spans); the others, and records without a mel channel, as they are."""
    if not window or MEL not in list(names or ()):
        return picked
    mel = list(names).index(MEL)
    lo, hi = segment_spans(clip.shape[0], frames)
    segs, where = np.unique(segment, return_inverse=True)  # each segment's image made once
    long, images = span_mel(lambda i: clip[torch.from_numpy(i), ..., mel].numpy(), lo[segs], hi[segs], window,
                            tuple(clip.shape[1:3]))
    rank = np.full(len(segs), -1)
    rank[long] = np.arange(len(long))
    on = rank[where] >= 0
    picked[torch.from_numpy(on), ..., mel] = torch.from_numpy(images[rank[where][on]])
    return picked


def small_clip(clip, recipe, positions=None, *, names=None, mel_window=None):
    """uint8 record clip (T, H, W, C) -> uint8 (frames * steps, C, size, size): the recipe's frames, resized
    with bilinear antialiasing and rounded (resize), the sound planes of each segment its span's
    (span_planes, by the record's channel `names`; None: none taken as planes), and with `mel_window`
    (record_mel_window) the mel image of a segment longer than a second its span's (span_mels).
    `positions`: only these of them (the others are neither read nor resized; a stored clip indexed by them
    is the same). A short clip repeats frames: each is resized once."""
    clip = torch.as_tensor(clip)
    assert clip.dim() == 4 and clip.dtype == torch.uint8, f"expected uint8 (T, H, W, C), got {clip.dtype} {clip.shape}"
    idx = recipe.indices(clip.shape[0])
    wanted = torch.arange(recipe.length) if positions is None else torch.as_tensor(positions)
    segment = wanted // recipe.steps
    # each (frame, segment) pair once: a frame picked by two short segments takes each one's mel image
    pairs, inverse = torch.unique(idx[wanted] * recipe.frames + segment, return_inverse=True)
    picked = span_mels(clip, clip[pairs // recipe.frames], (pairs % recipe.frames).numpy(), recipe.frames, names,
                       mel_window)
    x = resize(picked.permute(0, 3, 1, 2), recipe.size)[inverse].contiguous()  # (len, C, size, size) uint8
    segment = segment.numpy()
    for channel, values in span_planes(clip, recipe.frames, names).items():
        x[:, channel] = torch.from_numpy(values[segment])[:, None, None]
    return x


def keep_channels(x, channels):
    """uint8 (T, C, S, S) -> its channels at the indices `channels` (None: all): the one channel selection of
    training and prediction."""
    return x if channels is None else x[:, list(channels)]


def small_frames(clip, *, frames, size, channels=None, names=None, mel_window=None):
    """uint8 clip [T, H, W, C] -> uint8 (frames, C', size, size): the evaluation's frames, resized (small_clip,
    what the training cache stores; `names`: the record's channel names, `mel_window`: record_mel_window), the
    `channels` kept (keep_channels)."""
    recipe = ClipRecipe(frames, size)
    small = small_clip(clip, recipe, recipe.centres(), names=names, mel_window=mel_window)  # only these resized
    return keep_channels(small, channels)


# ----------------------------------------------------------------------------- normalised for the model

def normalise(x, *, mean, std, layout):
    """uint8 (..., T, C, S, S) -> float32, scaled to 0..1 and each channel normalised with mean/std, in `layout`
    ("cthw": (..., C, T, S, S)); on x's device. One clip (transform, predict) or a batch (Prepared.normaliser)."""
    C = x.shape[-3]
    assert x.dtype == torch.uint8, f"normalise takes uint8 clips, not {x.dtype}"
    mean = torch.as_tensor(mean, dtype=torch.float32, device=x.device)
    std = torch.as_tensor(std, dtype=torch.float32, device=x.device)
    assert mean.numel() == C and std.numel() == C, f"clip has {C} channels, statistics have {mean.numel()}"
    x = (x.float().div_(255.0) - mean.view(C, 1, 1)) / std.view(C, 1, 1)
    if layout == "cthw":
        x = x.transpose(-4, -3)                             # (..., C, T, S, S)
    return x.contiguous()


def transform(clip, *, frames, size, mean, std, layout, channels=None, names=None, mel_window=None):
    """The whole per-item recipe: uint8 clip [T, H, W, C] -> normalised float32 in `layout`
    (`channels`, `names`, `mel_window`: see small_frames; mean/std are the kept channels')."""
    assert layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {layout!r}"
    small = small_frames(clip, frames=frames, size=size, channels=channels, names=names, mel_window=mel_window)
    return normalise(small, mean=mean, std=std, layout=layout)


# ----------------------------------------------------------------------------- the channels

def channel_roles(names):
    """("picture" | "plane" | "mel", ...) for the channel names of a record (see the module docstring)."""
    names = list(names)
    if all(n not in PICTURE_NAMES + PLANE_NAMES + (MEL,) for n in names):  # unnamed: FMRGB's layout
        return tuple("picture" if i < len(names) - 2 else "mel" for i in range(len(names)))
    return tuple("picture" if n in PICTURE_NAMES else "plane" if n in PLANE_NAMES else "mel" for n in names)


def picture_channels(names):
    """How many leading channels are the picture (1 grey, 3 RGB; 0 if the first is not a picture one)."""
    roles = channel_roles(names)
    return next((i for i, r in enumerate(roles) if r != "picture"), len(roles))


def channel_indices(available, wanted):
    """The indices of the channel names `wanted` (e.g. ["red", "green", "blue"]) among a record's
    `available` names; a ValueError lists the available names for an unknown or repeated one."""
    available = list(available)
    unknown = [w for w in wanted if w not in available]
    if unknown or len(set(wanted)) != len(wanted) or not wanted:
        why = f"unknown channel {unknown[0]!r}" if unknown else "each channel once, at least one"
        raise ValueError(f"--channels {','.join(wanted)}: {why}; the files have {','.join(available)}")
    return [available.index(w) for w in wanted]
