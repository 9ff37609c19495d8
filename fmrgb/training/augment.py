"""Training-time augmentation that knows what each channel is: a random crop and flip of the picture.

    aug = Augment(roles=channel_roles(["red", "green", "blue", "amplitude", "mel"]))   # fmrgb.training.clip
    x = augment_clip(small, augment=aug)           # uint8 (T, C, S, S) -> uint8 (T, C, S, S)

augment_clip works on a small clip whose frames are already picked (fmrgb.training.clip: a random candidate of
each segment when training). By the channel's role (fmrgb.training.clip.channel_roles):
    "picture"  one random resized crop (area 0.6..1 of the frame, aspect 3/4..4/3) and a horizontal flip
               with probability 1/2, the same for every frame
    "plane"    uniform planes: a crop or flip leaves them as they are: untouched
    "mel"      never flipped (a flip reverses time) nor cropped (a crop shifts the frequency bands): untouched
The training Dataset applies augment_clip; validation, test and predict never do.
"""
import dataclasses
import math

import torch

from fmrgb.training.clip import resize


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
