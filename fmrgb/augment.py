"""Which frames of a clip a model sees, and the training-time augmentation that knows what each channel is.

    segment_indices(300, 16)                       # evaluation: the centre of each of 16 equal segments
    candidate_indices(300, 16, steps=3)            # the frames a small clip keeps: 3 candidates per segment
    centre_candidates(16, 3)                       # evaluation: the middle candidate, the segment's centre
    random_candidates(16, 3)                       # training: one random candidate of each segment
    aug = Augment(roles=channel_roles(["red", "green", "blue", "amplitude", "mel"]))
    x = augment_clip(small, augment=aug)           # uint8 (T, C, S, S) -> uint8 (T, C, S, S)

A small clip (fmrgb.cache.small_clip) holds `steps` candidate frames per time segment, at (2k+1)/(2*steps)
of it, already resized to S x S; evaluation takes the middle one, training one at random (time jitter).
augment_clip then works on the small clip. A channel's role comes from its name in the record
(fmrgb.sound.channel_names):
    red, green, blue, grey   "picture"  one random resized crop (area 0.6..1 of the frame, aspect 3/4..4/3)
                                        and a horizontal flip with probability 1/2, the same for every frame
    amplitude, frequency     "plane"    uniform planes: a crop or flip leaves them as they are: untouched
    mel                      "mel"      never flipped (a flip reverses time) nor cropped (a crop shifts the
                                        frequency bands): untouched
Records without channel names (c0, c1, ...) follow FMRGB's layout: the picture, then two sound channels,
which are left untouched (what is safe for both kinds). The training Dataset applies augment_clip;
validation, test and predict never do.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F

PICTURE_NAMES = ("red", "green", "blue", "grey")
PLANE_NAMES = ("amplitude", "frequency")


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
    """uint8 (T, C, H, W) -> uint8 (T, C, size, size): bilinear with antialiasing, rounded (the small clip's recipe:
    PyTorch's uint8 kernel, no float copy)."""
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def augment_clip(x, *, augment):
    """uint8 small clip (T, C, S, S), its frames already picked -> uint8 (T, C, S, S): the picture channels
    cropped and resized back to S x S and maybe flipped (one choice for the whole clip), the others untouched."""
    T, C, S, _ = x.shape
    assert C == len(augment.roles), f"{C} channels but {len(augment.roles)} roles"
    picture = [i for i, r in enumerate(augment.roles) if r == "picture"]
    if not picture:
        return x
    out = x.clone()
    top, left, h, w = crop_box(S, S, scale=augment.scale, ratio=augment.ratio)
    p = resize(x[:, picture, top:top + h, left:left + w], S)    # (T, Cp, S, S)
    out[:, picture] = p.flip(-1) if torch.rand(()) < augment.flip else p
    return out
