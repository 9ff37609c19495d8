"""Labelled FMRGB records as a torch Dataset, with the training files' channel statistics.

    from fmrgb.training.survey import survey_data
    from fmrgb.training.splits import train_val_test
    survey = survey_data("data/")                 # listed, checked and grouped once (fmrgb.training.survey)
    parts = train_val_test(survey.label_names, survey.groups, test_size=0.2, val_size=0.2, seed=0)
    data = prepare_split(survey, parts, frames=32, size=64, cache=cache)    # the training statistics too
    ds = data.subset("train", frames=32, size=64, layout="cthw", cache=cache, uint8=True)
    norm = data.normaliser("cthw", device)        # normalise for ds's batches, where the model runs

One item: the clip recipe of fmrgb.training.clip (`transform`: the centres of `frames` equal segments, resized to
size x size, scaled to 0..1, each channel normalised with the training set's mean/std, in the layout the
model wants); predict.py uses the same function. A training set may augment its clips
(augment=fmrgb.training.augment.Augment: random frames and crops, per channel). Training reads the small clips from
a cache (cache=fmrgb.training.cache.ClipCache) and takes uint8 items (uint8=True), normalised on the device by the
same function (`normaliser`). Several splits of one survey (folds) each get their own prepare_split; under
DDP pass the run's DistContext (`ctx`).
"""
import dataclasses
import functools
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fmrgb.training.augment import augment_clip
from fmrgb.training.cache import clip_sums, picked_frames
from fmrgb.training.clip import LAYOUTS, ClipRecipe, keep_channels, normalise
from fmrgb.training.distributed import on_every_process
from fmrgb.training.survey import common_length

MIN_STD = 1e-6  # a channel that never varies (e.g. a silent sound track) is only centred, not scaled


class FMRGBDataset(Dataset):
    """(video, label) pairs; video is `transform`ed (see the module docstring), or with `uint8` left as the
    uint8 small frames (T, C, S, S) for `normaliser` to normalise whole batches on the device (training).
    `cache`: a fmrgb.training.cache.ClipCache of this frames/size, where the small clips are read (and made once)."""

    def __init__(self, paths, labels, *, frames=32, size=64, mean=None, std=None, layout="cthw", channels=None,
                 augment=None, cache=None, uint8=False):
        assert len(paths) == len(labels), f"{len(paths)} paths but {len(labels)} labels"
        assert layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {layout!r}"
        self.paths, self.labels = [Path(p) for p in paths], [int(y) for y in labels]
        self.frames, self.size, self.layout = frames, size, layout
        self.mean, self.std, self.channels = mean, std, channels
        self.augment = augment  # an fmrgb.training.augment.Augment for a training set; None: the evaluation recipe
        self.recipe, self.cache, self.uint8 = ClipRecipe(frames, size), cache, uint8
        assert cache is None or cache.recipe == self.recipe, f"a cache of {cache.recipe}, not of {self.recipe}"

    def __len__(self):
        return len(self.paths)

    def small(self, i):
        """uint8 (frames, C, size, size) of item i: a random candidate frame per segment when augmenting, else
        the centres; then the kept channels, augmented."""
        positions = self.recipe.jittered() if self.augment is not None else self.recipe.centres()
        x = keep_channels(picked_frames(self.paths[i], self.recipe, positions, self.cache), self.channels)
        return x if self.augment is None else augment_clip(x, augment=self.augment)

    def __getitem__(self, i):
        x = self.small(i)
        if not self.uint8:
            C = x.shape[1]
            x = normalise(x, mean=[0.0] * C if self.mean is None else self.mean,
                          std=[1.0] * C if self.std is None else self.std, layout=self.layout)
        return x, self.labels[i]


def compute_stats(paths, *, frames=32, size=64, num_workers=0, channels=None, cache=None, ctx=None):
    """Per-channel (mean, std) lists over the evaluation frames of `paths` (the training files; `channels`:
    the kept channels' indices), from exact integer sums of the small clips, made and stored in `cache` in
    the same parallel pass. Under DDP (`ctx`) each process takes its share and the sums are added: the same
    numbers as one process's."""
    assert len(paths) > 0, "no files to compute statistics from"
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None and ctx.ddp else (0, 1)
    parts = on_every_process(lambda: clip_sums(paths, ClipRecipe(frames, size), cache=cache,
                                               num_workers=num_workers, rank=rank, world=world), ctx)
    total, count = sum(t for t, _ in parts if t is not None), sum(n for _, n in parts)
    if channels is not None:
        total = total[:, list(channels)]
    mean = total[0].double() / (255.0 * count)
    std = (total[1].double() / (255.0 ** 2 * count) - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return mean.tolist(), std.tolist()


# ----------------------------------------------------------------------------- a training run's data

@dataclasses.dataclass(frozen=True)
class Prepared:
    """The files of a run, split: `train`, `val`, `test` index into `paths`/`labels` (class indices
    into `classes`); `info` is inspect_files' summary with "pt_frames" of the training files;
    `mean`/`std` are the training files' channel statistics (of the `channels` kept: indices, None
    for all); `names` are the files as listed (split.json's entries)."""
    paths: list
    labels: list
    classes: list
    train: list
    val: list
    test: list
    info: dict
    mean: list
    std: list
    names: list = None
    channels: list = None

    def subset(self, part, *, frames, size, layout, augment=None, cache=None, uint8=False):
        """An FMRGBDataset of one part ("train", "val" or "test"), normalised with the training statistics
        (with `uint8`, by normaliser(layout) on the device); `augment` (fmrgb.training.augment.Augment) only for "train"."""
        assert augment is None or part == "train", f"augmentation is for the training files, not {part!r}"
        idx = getattr(self, part)
        return FMRGBDataset([self.paths[i] for i in idx], [self.labels[i] for i in idx], frames=frames, size=size,
                            mean=self.mean, std=self.std, layout=layout, channels=self.channels, augment=augment,
                            cache=cache, uint8=uint8)

    def normaliser(self, layout, device="cpu"):
        """normalise with the training statistics (moved to `device` once) and `layout`: for uint8 subsets."""
        mean, std = (torch.tensor(v, dtype=torch.float32, device=device) for v in (self.mean, self.std))
        return functools.partial(normalise, mean=mean, std=std, layout=layout)

    def channel_names(self):
        """The names of the channels the model takes (the kept ones)."""
        names = list(self.info["channels"])
        return names if self.channels is None else [names[i] for i in self.channels]


def prepare_split(survey, parts, *, frames, size, channels=None, num_workers=0, stats=None, ctx=None, cache=None):
    """A Survey and its parts ({"train", "val", "test"} index lists) -> Prepared, with the training
    files' channel statistics (`stats=(mean, std)` reuses given ones, when resuming). With a `cache`
    (fmrgb.training.cache.ClipCache) the training files' small clips are made in the same pass (the others when
    first read). Under DDP (`ctx`) every process takes its share (compute_stats): the same numbers, an
    error raised on every process."""
    info = dict(survey.info, pt_frames=common_length([survey.info["lengths"][i] for i in parts["train"]]))
    if stats is None:
        stats = compute_stats([survey.paths[i] for i in parts["train"]], frames=frames, size=size,
                              num_workers=num_workers, channels=channels, cache=cache, ctx=ctx)
    mean, std = stats
    return Prepared(paths=survey.paths, labels=survey.labels, classes=survey.classes, train=list(parts["train"]),
                    val=list(parts["val"]), test=list(parts["test"]), info=info, mean=list(mean), std=list(std),
                    names=survey.names, channels=channels)
