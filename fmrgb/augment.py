"""Which frames of a clip a model sees, and the training-time augmentation that knows what each channel is.

    segment_indices(300, 16)                       # evaluation: the centre of each of 16 equal segments
    segment_indices(300, 16, torch.rand(16))       # training: a random frame inside each segment
    aug = Augment(roles=channel_roles(["red", "green", "blue", "amplitude", "mel"]))
    x = augment_clip(clip, frames=16, size=112, augment=aug)   # float32 (16, C, 112, 112) in 0..1

A channel's role comes from its name in the record (fmrgb.sound.channel_names):
    red, green, blue, grey   "picture"  one random resized crop (area 0.6..1 of the frame, aspect 3/4..4/3)
                                        and a horizontal flip with probability 1/2, the same for every frame
    amplitude, frequency     "plane"    uniform planes: a crop or flip leaves them as they are, so only resized
    mel                      "mel"      never flipped (a flip reverses time) nor cropped (a crop shifts the
                                        frequency bands): only resized
Records without channel names (c0, c1, ...) follow FMRGB's layout: the picture, then two sound channels,
which are only resized (what is safe for both kinds). augment_clip is dataset.pick_and_resize with these
random choices: the training Dataset applies it; validation, test and predict never do.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F

PICTURE_NAMES = ("red", "green", "blue", "grey")
PLANE_NAMES = ("amplitude", "frequency")


def segment_indices(n, frames, offsets=None):
    """One frame index in each of `frames` equal segments of a clip of n frames: at `offsets` (frames,)
    in [0, 1) of each segment, or their centres (None). A clip shorter than `frames` repeats frames."""
    offsets = torch.full((frames,), 0.5) if offsets is None else offsets
    pos = (torch.arange(frames, dtype=torch.float64) + offsets.double()) * (n / frames)
    return pos.floor().long().clamp_(0, n - 1)


def channel_roles(names):
    """("picture" | "plane" | "mel", ...) for the channel names of a record (see the module docstring)."""
    names = list(names)
    if all(n not in PICTURE_NAMES + PLANE_NAMES + ("mel",) for n in names):  # unnamed: FMRGB's layout
        return tuple("picture" if i < len(names) - 2 else "mel" for i in range(len(names)))
    return tuple("picture" if n in PICTURE_NAMES else "plane" if n in PLANE_NAMES else "mel" for n in names)


def picture_channels(names):
    """How many leading channels are the picture (1 grey, 3 RGB; 0 if the first is not a picture one)."""
    roles = channel_roles(names)
    return next((i for i, r in enumerate(roles) if r != "picture"), len(roles))


@dataclasses.dataclass(frozen=True)
class Augment:
    """The random choices of augment_clip: each channel's role, the crop's area fraction and aspect range, the
    probability of a horizontal flip."""
    roles: tuple
    scale: tuple = (0.6, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)
    flip: float = 0.5


def crop_box(height, width, *, scale, ratio):
    """A random (top, left, h, w): area `scale` of the frame (uniform), aspect `ratio` times the frame's
    (log-uniform), clamped to the frame, so the square resize after it stretches as the evaluation's does."""
    area = torch.empty(()).uniform_(*scale).item()
    aspect = math.exp(torch.empty(()).uniform_(math.log(ratio[0]), math.log(ratio[1])).item())
    h = min(height, max(1, round(height * math.sqrt(area / aspect))))
    w = min(width, max(1, round(width * math.sqrt(area * aspect))))
    top = int(torch.randint(0, height - h + 1, ()))
    left = int(torch.randint(0, width - w + 1, ()))
    return top, left, h, w


def resize(x, size):
    """uint8 (T, C, H, W) -> float32 (T, C, size, size) in 0..1, bilinear with antialiasing (as the evaluation)."""
    x = x.float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def augment_clip(clip, *, frames, size, augment, channels=None):
    """uint8 clip [T, H, W, C] -> float32 (frames, C', size, size) in 0..1: a random frame in each time
    segment, the picture channels cropped and maybe flipped (one choice for the whole clip), the others only
    resized. `channels`: the indices of the channels to keep (None: all); `augment.roles` are theirs."""
    T, H, W, _ = clip.shape
    x = clip[segment_indices(T, frames, torch.rand(frames))]      # (frames, H, W, C) uint8
    if channels is not None:
        x = x[..., list(channels)]                                 # (frames, H, W, C') uint8
    x = x.permute(0, 3, 1, 2)                                      # (frames, C', H, W) uint8
    assert x.shape[1] == len(augment.roles), f"{x.shape[1]} channels but {len(augment.roles)} roles"
    picture = [i for i, r in enumerate(augment.roles) if r == "picture"]
    others = [i for i, r in enumerate(augment.roles) if r != "picture"]
    out = torch.empty(frames, x.shape[1], size, size)
    if picture:
        top, left, h, w = crop_box(H, W, scale=augment.scale, ratio=augment.ratio)
        p = resize(x[:, picture, top:top + h, left:left + w], size)  # (frames, Cp, size, size)
        out[:, picture] = p.flip(-1) if torch.rand(()) < augment.flip else p
    if others:
        out[:, others] = resize(x[:, others], size)
    return out
