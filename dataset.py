"""Labelled FMRGB tensors (.pt files) as a torch Dataset.

    from dataset import find_data, inspect_files, split_indices, compute_stats, FMRGBDataset
    paths, labels = find_data("data/")            # folder: label = parent folder; or a CSV path,label
    classes = sorted(set(labels))
    info = inspect_files(paths)                   # channel names, pt frames, ... (checks they agree)
    train, val, test = split_indices(labels, test_size=0.2, val_size=0.2, seed=0)
    mean, std = compute_stats([paths[i] for i in train], frames=32, size=64)
    ds = FMRGBDataset([paths[i] for i in train], [classes.index(labels[i]) for i in train],
                      frames=32, size=64, mean=mean, std=std, layout="cthw")

One item: the clip's `frames` time steps (the centres of equal segments), resized to size x size
(bilinear, antialiased, rounded to uint8: the small clip of fmrgb.cache), scaled from 0..255 to 0..1,
each channel normalised with the training set's mean/std, in the layout the model wants ("cthw" ->
(C, T, H, W); "tchw" -> (T, C, H, W)). `transform` is that whole recipe for one uint8 clip; predict.py
uses the same function. A training set may augment its clips (augment=fmrgb.augment.Augment: random
frames and crops, per channel). Training reads the small clips from a cache (cache=fmrgb.cache.ClipCache)
and takes uint8 items (uint8=True), normalised on the device by the same function (`normalise`).
All of the above in one call, as train.py does it (under DDP pass its DistContext):

    data = prepare_data("data/", test_size=0.2, val_size=0.2, seed=0, frames=32, size=64, cache=cache)
    ds = data.subset("train", frames=32, size=64, layout="cthw", cache=cache, uint8=True)
    norm = data.normaliser("cthw", device)        # normalise for ds's batches, where the model runs

or in two steps, for several splits of one data set (folds; fmrgb.splits groups twins together):

    survey = survey_data("data/")                 # listed, checked and grouped once
    data = prepare_split(survey, parts, frames=32, size=64, channels=[3, 4])   # parts: {"train": [...], ...}
"""
import csv
import dataclasses
import functools
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fmrgb.augment import augment_clip, segment_indices
from fmrgb.cache import CacheRecipe, clip_sums, small_clip
from fmrgb.distributed import on_every_process, on_master
from fmrgb.cli import warn
from fmrgb.files import find_files
from fmrgb.record import generic_channels, load_record
from fmrgb.splits import group_files, keep_saved, read_records, train_val_test

LAYOUTS = ("cthw", "tchw")
MIN_STD = 1e-6  # a channel that never varies (e.g. a silent sound track) is only centred, not scaled


# ----------------------------------------------------------------------------- finding the data

@dataclasses.dataclass(frozen=True)
class Listing:
    """The files of --data: `paths` to read, `names` as found under the folder (relative to it) or as
    written in the CSV (what split.json records), `labels` (class names), `groups` (a CSV's group
    column, or None)."""
    paths: list
    names: list
    labels: list
    groups: list = None

    def subset(self, keep):
        """The Listing of the files at the indices `keep`."""
        def pick(values):
            return None if values is None else [values[i] for i in keep]

        return Listing(pick(self.paths), pick(self.names), pick(self.labels), pick(self.groups))


def find_data(data):
    """(paths, labels) from a folder (every *.pt below it; label = the file's parent folder's name)
    or from a CSV with columns path,label (paths relative to the CSV's folder, or absolute)."""
    listing = list_data(data)
    return listing.paths, listing.labels


def list_data(data):
    """find_data's files as a Listing. A CSV may add a `group` column (files of one group, e.g. clips
    cut from one source video, are never split apart); a CSV listing a file twice is a ValueError."""
    data = Path(data)
    if data.is_dir():
        paths = find_files(data, {".pt"}, on_skip=warn)
        if not paths:
            raise ValueError(f"{data}: no .pt files below this folder")
        return Listing(paths, [p.relative_to(data).as_posix() for p in paths], [p.parent.name for p in paths])
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no such file or folder")
    with open(data, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [name.strip().lower() for name in reader.fieldnames or []]
        if "path" not in fields or "label" not in fields:
            raise ValueError(f"{data}: a CSV needs the columns path,label (found: {','.join(fields) or 'none'})")
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    paths, labels, names, seen = [], [], [], {}
    for n, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise ValueError(f"{data}: line {n}: empty path or label")
        p = Path(row["path"])
        p = p if p.is_absolute() else data.parent / p
        first = seen.setdefault(os.path.realpath(p), n)
        if first != n:  # a repeated row would put one file on both sides of the split
            raise ValueError(f"{data}: line {n} ({row['path']}) repeats the file of line {first}: list each file once")
        paths.append(p)
        labels.append(row["label"])
        names.append(row["path"])
    if not paths:
        raise ValueError(f"{data}: the CSV lists no files")
    groups = [row.get("group") or None for row in rows] if "group" in fields else None
    return Listing(paths, names, labels, groups)


def class_names(labels):
    """Sorted class names: a class's index is its place in this list (stable across runs)."""
    return sorted(set(labels))


# ----------------------------------------------------------------------------- one clip

def frame_indices(n, frames):
    """`frames` indices into a clip of n frames: the centres of equal segments (a shorter clip repeats
    frames); training's augmentation takes a random frame of each segment instead (fmrgb.augment)."""
    return segment_indices(n, frames)


def small_frames(clip, *, frames, size, channels=None):
    """uint8 clip [T, H, W, C] -> uint8 (frames, C', size, size): the evaluation's frames, resized (bilinear,
    antialiased, rounded: fmrgb.cache.small_clip, what the training cache stores); `channels`: the indices of
    the channels to keep (None: all), the one channel selection of training and prediction."""
    recipe = CacheRecipe(frames, size)
    x = small_clip(clip, recipe, recipe.centres())          # only these frames are read and resized
    return x if channels is None else x[:, list(channels)]


def pick_and_resize(clip, *, frames, size, channels=None):
    """small_frames as float32 in 0..1."""
    return small_frames(clip, frames=frames, size=size, channels=channels).float().div_(255.0)


def transform(clip, *, frames, size, mean, std, layout, channels=None):
    """The whole per-item recipe: uint8 clip [T, H, W, C] -> normalised float32 in `layout`
    (`channels`: see small_frames; mean/std are the kept channels')."""
    assert layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {layout!r}"
    return normalise(small_frames(clip, frames=frames, size=size, channels=channels), mean=mean, std=std,
                     layout=layout)


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


# ----------------------------------------------------------------------------- many files

def inspect_files(paths, records=None):
    """Check every file can be read and that all have the same channels; return what they share:
    {"channels", "pt_frames" (common T or None), "audiomethod", "frequency_param", "sample_rate", "fps"}
    (a setting the files disagree on, or that they lack, is None) and "lengths" (each file's T).
    `records`: fmrgb.splits.read_records(paths), when read already."""
    assert len(paths) > 0, "no files to inspect"
    first, metas, lengths = None, [], []
    for p, (shape, meta, _) in zip(paths, records or read_records(paths)):
        if first is None:
            first = (p, shape[-1])
        elif shape[-1] != first[1]:
            raise ValueError(f"mixed channel counts: {first[0]} has {first[1]} channels, {p} has {shape[-1]}")
        metas.append(meta)
        lengths.append(int(shape[0]))

    check_same_conversion(paths, metas)

    def common(key):
        values = {repr(m.get(key)) for m in metas}
        return metas[0].get(key) if len(values) == 1 else None

    return {
        "channels": list(metas[0]["channels"]),
        "pt_frames": common_length(lengths),
        "audiomethod": common("audiomethod"),
        "frequency_param": common("frequency_param"),
        "sample_rate": common("sample_rate"),
        "fps": common("fps"),
        "lengths": lengths,
    }


def check_same_conversion(paths, metas):
    """ValueError naming one file of each kind when the files were converted differently: other
    channel names (named and unnamed ones, c0, c1, ..., do not mix either), --audiomethod or
    --frequency_param. Stacking them would feed one input channel different quantities."""
    def kind(meta):
        names = "unnamed channels" if generic_channels(meta["channels"]) else "channels " + ",".join(meta["channels"])
        return names, f"audiomethod {meta.get('audiomethod')}", f"frequency_param {meta.get('frequency_param')}"

    first = kind(metas[0])
    for p, meta in zip(paths, metas):
        for mine, theirs in zip(first, kind(meta)):
            if mine != theirs:
                raise ValueError(f"mixed conversions: {paths[0]} has {mine}, {p} has {theirs} "
                                 f"(convert every file with the same settings)")


def channel_indices(available, wanted):
    """The indices of the channel names `wanted` (e.g. ["red", "green", "blue"]) among a record's
    `available` names; a ValueError lists the available names for an unknown or repeated one."""
    available = list(available)
    unknown = [w for w in wanted if w not in available]
    if unknown or len(set(wanted)) != len(wanted) or not wanted:
        why = f"unknown channel {unknown[0]!r}" if unknown else "each channel once, at least one"
        raise ValueError(f"--channels {','.join(wanted)}: {why}; the files have {','.join(available)}")
    return [available.index(w) for w in wanted]


def common_length(lengths):
    """The T all files share, or None if they differ."""
    return lengths[0] if lengths and len(set(lengths)) == 1 else None


def split_indices(labels, *, test_size, val_size, seed, groups=None):
    """Stratified, seeded split -> (train, val, test) index lists, whole `groups` at a time (default:
    every file its own; see fmrgb.splits). Sizes are fractions of all files. A split that leaves a
    class out of a part is a ValueError with the counts."""
    parts = train_val_test(labels, groups, test_size=test_size, val_size=val_size, seed=seed)
    return parts["train"], parts["val"], parts["test"]


class FMRGBDataset(Dataset):
    """(video, label) pairs; video is `transform`ed (see the module docstring), or with `uint8` left as the
    uint8 small frames (T, C, S, S) for `normaliser` to normalise whole batches on the device (training).
    `cache`: a fmrgb.cache.ClipCache of this frames/size, where the small clips are read (and made once)."""

    def __init__(self, paths, labels, *, frames=32, size=64, mean=None, std=None, layout="cthw", channels=None,
                 augment=None, cache=None, uint8=False):
        assert len(paths) == len(labels), f"{len(paths)} paths but {len(labels)} labels"
        assert layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {layout!r}"
        self.paths, self.labels = [Path(p) for p in paths], [int(y) for y in labels]
        self.frames, self.size, self.layout = frames, size, layout
        self.mean, self.std, self.channels = mean, std, channels
        self.augment = augment  # an fmrgb.augment.Augment for a training set; None: the evaluation recipe
        self.recipe, self.cache, self.uint8 = CacheRecipe(frames, size), cache, uint8
        assert cache is None or cache.recipe == self.recipe, f"a cache of {cache.recipe}, not of {self.recipe}"

    def __len__(self):
        return len(self.paths)

    def small(self, i):
        """uint8 (frames, C, size, size) of item i: a random candidate frame per segment when augmenting, else
        the centres; then the kept channels, augmented."""
        positions = self.recipe.jittered() if self.augment is not None else self.recipe.centres()
        if self.cache is not None:
            x = self.cache.frames(self.paths[i], positions)
        else:
            x = small_clip(load_record(self.paths[i])[0], self.recipe, positions)
        if self.channels is not None:
            x = x[:, list(self.channels)]
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
    parts = on_every_process(lambda: clip_sums(paths, CacheRecipe(frames, size), cache=cache,
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
class Survey:
    """Every file a run uses, listed and checked once: `paths`, `names` (as listed: split.json's
    entries), `labels` (class indices into `classes`), `info` (inspect_files), `groups` (a group id per
    file, fmrgb.splits; None when not asked for), `grouping` (its summary line) and `ignored` (files
    of the folder left out because a resumed run's split does not hold them)."""
    paths: list
    names: list
    labels: list
    classes: list
    info: dict
    groups: list = None
    grouping: str = ""
    ignored: int = 0

    @property
    def label_names(self):
        return [self.classes[k] for k in self.labels]


def survey_data(data, *, saved=None, group=True, ctx=None):
    """List --data, check the files (inspect_files) and group them (group_files) -> Survey.
    `saved`: a resumed run's split ({"train": names, ...}): only its files are used (a SplitError
    names those that are gone); the split is kept, so files need no grouping then. Under DDP (`ctx`)
    process 0 lists the files and every process reads its share of them (read_records)."""
    def listed():
        listing, ignored = list_data(data), 0
        if saved is not None:
            keep, ignored = keep_saved(listing.names, saved)
            listing = listing.subset(keep)
        return listing, ignored

    listing, ignored = on_master(listed, ctx)
    records = read_records(listing.paths, group=group, ctx=ctx)
    info = inspect_files(listing.paths, records)
    grouping = group_files(listing.paths, user_groups=listing.groups, keys=[r[2] for r in records]) if group else None
    classes = class_names(listing.labels)
    return Survey(paths=listing.paths, names=listing.names, labels=[classes.index(n) for n in listing.labels],
                  classes=classes, info=info, groups=None if grouping is None else list(grouping.groups),
                  grouping="" if grouping is None else grouping.summary(), ignored=ignored)


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
        (with `uint8`, by normaliser(layout) on the device); `augment` (fmrgb.augment.Augment) only for "train"."""
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
    (fmrgb.cache.ClipCache) the training files' small clips are made in the same pass (the others when
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


def prepare_data(data, *, test_size, val_size, seed, frames, size, num_workers=0, stats=None, ctx=None, cache=None):
    """Find, check, group and split the files and compute the training set's channel statistics ->
    Prepared (survey_data, a stratified group split, prepare_split)."""
    survey = survey_data(data, ctx=ctx)
    parts = train_val_test(survey.label_names, survey.groups, test_size=test_size, val_size=val_size, seed=seed)
    return prepare_split(survey, parts, frames=frames, size=size, num_workers=num_workers, stats=stats, ctx=ctx,
                         cache=cache)
