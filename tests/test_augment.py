"""fmrgb/training/augment.py: the training augmentation that knows each channel's role, and only a training set's."""
import pytest
import torch

import fmrgb.training.cache as cache_module
from conftest import prepare, write_dataset
from dataset import FMRGBDataset
from fmrgb.training.augment import Augment, augment_clip
from fmrgb.training.clip import ClipRecipe, channel_roles, small_clip, transform

NAMES = ["red", "green", "blue", "amplitude", "mel"]


def marked_clip(T=12, H=24, W=32):
    """A clip whose channels tell what happened to them: red rises left to right and green top to bottom
    (the same picture in every frame), amplitude is the frame number x 10 (uniform), mel a random image
    plus the frame number (so a flip, a crop or a wrong frame shows)."""
    g = torch.Generator().manual_seed(0)
    clip = torch.zeros(T, H, W, 5, dtype=torch.uint8)
    clip[..., 0] = torch.linspace(0, 250, W).round().to(torch.uint8)
    clip[..., 1] = torch.linspace(0, 250, H).round().to(torch.uint8).view(H, 1)
    clip[..., 2] = 128
    clip[..., 3] = (torch.arange(T) * 10).view(T, 1, 1).to(torch.uint8)
    clip[..., 4] = (torch.randint(0, 200, (1, H, W), generator=g) + torch.arange(T).view(T, 1, 1)).to(torch.uint8)
    return clip


def test_picture_is_cropped_and_flipped_sound_never():
    torch.manual_seed(0)
    clip, aug = marked_clip(), Augment(roles=channel_roles(NAMES))
    recipe = ClipRecipe(frames=6, size=16)
    small = small_clip(clip, recipe)                                   # (18, 5, 16, 16): 3 candidates a segment
    plain = small_clip(clip, ClipRecipe(frames=12, size=16, steps=1))  # every frame once, resized
    flips, areas, taken = [], [], []
    for _ in range(40):
        pos = recipe.jittered()
        x = augment_clip(small[pos], augment=aug)                      # uint8 (6, 5, 16, 16)
        t = (x[:, 3, 0, 0].float() / 10).round().long()                # the frames taken
        assert torch.equal(t, recipe.indices(12)[pos])                 # each segment's chosen candidate
        assert torch.equal(x[:, 3], plain[t, 3])                       # planes: untouched
        assert torch.equal(x[:, 4], plain[t, 4])                       # mel: never flipped or cropped
        assert (x[:, :3] == x[:1, :3]).all()                           # one crop for the whole clip
        red, green = x[0, 0].float(), x[0, 1].float()
        flips.append(bool(red[:, 0].mean() > red[:, -1].mean()))
        areas.append(float((red.amax() - red.amin()) * (green.amax() - green.amin())) / 250 ** 2)
        taken.append(t)
    assert 10 <= sum(flips) <= 30, flips  # a horizontal flip about half the time
    assert min(areas) > 0.4 and max(areas) <= 1.0 and max(areas) - min(areas) > 0.2, areas  # crops of 0.6..1
    taken = torch.stack(taken)  # (40, 6): time jitter, among each segment's candidates (frames 2j and 2j + 1)
    assert all(set(taken[:, j].tolist()) == {2 * j, 2 * j + 1} for j in range(6)), taken


def test_only_a_training_set_augments(monkeypatch):
    torch.manual_seed(0)
    clip = marked_clip()
    monkeypatch.setattr(cache_module, "load_record", lambda p: (clip, {}))
    mean, std = [0.5] * 5, [0.25] * 5
    ds = FMRGBDataset(["a.pt"], [1], frames=6, size=16, mean=mean, std=std, layout="cthw",
                      augment=Augment(roles=channel_roles(NAMES)))
    ds_eval = FMRGBDataset(["a.pt"], [1], frames=6, size=16, mean=mean, std=std, layout="cthw")
    a, b = ds[0][0], ds[0][0]
    e1, e2 = ds_eval[0][0], ds_eval[0][0]
    assert a.shape == e1.shape == (5, 6, 16, 16)
    assert not torch.equal(a, b)  # another draw each time
    torch.testing.assert_close(e1, e2)
    torch.testing.assert_close(e1, transform(clip, frames=6, size=16, mean=mean, std=std, layout="cthw"))


def test_augmentation_is_refused_for_validation_and_test(tmp_path):
    write_dataset(tmp_path, per_class=6, T=4, H=8, W=8)
    data = prepare(tmp_path, test_size=0.25, val_size=0.25, seed=0, frames=4, size=8)
    aug = Augment(roles=channel_roles(data.channel_names()))
    assert data.subset("train", frames=4, size=8, layout="cthw", augment=aug).augment is aug
    for part in ("val", "test"):
        with pytest.raises(AssertionError, match="training files"):
            data.subset(part, frames=4, size=8, layout="cthw", augment=aug)
