"""Labelled FMRGB tensors (.pt files) as a torch Dataset.

    from dataset import find_data, inspect_files, split_indices, compute_stats, FMRGBDataset
    paths, labels = find_data("data/")            # folder: label = parent folder; or a CSV path,label
    classes = sorted(set(labels))
    info = inspect_files(paths)                   # channel names, pt frames, ... (checks they agree)
    train, val, test = split_indices(labels, test_size=0.2, val_size=0.2, seed=0)
    mean, std = compute_stats([paths[i] for i in train], frames=32, size=64)
    ds = FMRGBDataset([paths[i] for i in train], [classes.index(labels[i]) for i in train],
                      frames=32, size=64, mean=mean, std=std, layout="cthw")

One item: the clip's `frames` evenly spaced time steps, resized to size x size (bilinear,
antialiased), scaled from 0..255 to 0..1, each channel normalised with the training set's mean/std,
in the layout the model wants ("cthw" -> (C, T, H, W); "tchw" -> (T, C, H, W)).
`transform` is that whole recipe for one uint8 clip; predict.py uses the same function.
All of the above in one call, as train.py does it (under DDP pass its DistContext):

    data = prepare_data("data/", test_size=0.2, val_size=0.2, seed=0, frames=32, size=64)
    ds = data.subset("train", frames=32, size=64, layout="cthw")
"""
import csv
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fmrgb.distributed import broadcast_object
from fmrgb.files import find_files
from fmrgb.record import load_record

LAYOUTS = ("cthw", "tchw")
MIN_STD = 1e-6  # a channel that never varies (e.g. a silent sound track) is only centred, not scaled


# ----------------------------------------------------------------------------- finding the data

def find_data(data):
    """(paths, labels) from a folder (every *.pt below it; label = the file's parent folder's name)
    or from a CSV with columns path,label (paths relative to the CSV's folder, or absolute)."""
    data = Path(data)
    if data.is_dir():
        paths = find_files(data, {".pt"})
        if not paths:
            raise ValueError(f"{data}: no .pt files below this folder")
        return paths, [p.parent.name for p in paths]
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no such file or folder")
    with open(data, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [name.strip().lower() for name in reader.fieldnames or []]
        if "path" not in fields or "label" not in fields:
            raise ValueError(f"{data}: a CSV needs the columns path,label (found: {','.join(fields) or 'none'})")
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    paths, labels = [], []
    for n, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"]:
            raise ValueError(f"{data}: line {n}: empty path or label")
        p = Path(row["path"])
        paths.append(p if p.is_absolute() else data.parent / p)
        labels.append(row["label"])
    if not paths:
        raise ValueError(f"{data}: the CSV lists no files")
    return paths, labels


def class_names(labels):
    """Sorted class names: a class's index is its place in this list (stable across runs)."""
    return sorted(set(labels))


# ----------------------------------------------------------------------------- one clip

def frame_indices(n, frames):
    """`frames` evenly spaced indices into a clip of n frames (a shorter clip repeats frames)."""
    return torch.linspace(0, n - 1, frames).round().long()


def pick_and_resize(clip, *, frames, size):
    """uint8 clip [T, H, W, C] -> float32 (frames, C, size, size) in 0..1.

    Picks the time steps first, so only those frames are read and converted."""
    x = clip[frame_indices(clip.shape[0], frames)]          # (frames, H, W, C) uint8
    x = x.permute(0, 3, 1, 2).float().div_(255.0)           # (frames, C, H, W) in 0..1
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def transform(clip, *, frames, size, mean, std, layout):
    """The whole per-item recipe: uint8 clip [T, H, W, C] -> normalised float32 in `layout`."""
    assert layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {layout!r}"
    x = pick_and_resize(clip, frames=frames, size=size)     # (T, C, S, S)
    C = x.shape[1]
    mean = torch.as_tensor(mean, dtype=torch.float32)
    std = torch.as_tensor(std, dtype=torch.float32)
    assert mean.numel() == C and std.numel() == C, f"clip has {C} channels, statistics have {mean.numel()}"
    x = (x - mean.view(1, C, 1, 1)) / std.view(1, C, 1, 1)
    if layout == "cthw":
        x = x.permute(1, 0, 2, 3)                           # (C, T, S, S)
    return x.contiguous()


# ----------------------------------------------------------------------------- many files

def inspect_files(paths):
    """Check every file can be read and that all have the same channels; return what they share:
    {"channels", "pt_frames" (common T or None), "audiomethod", "frequency_param", "sample_rate", "fps"}
    (a setting the files disagree on, or that they lack, is None) and "lengths" (each file's T)."""
    assert len(paths) > 0, "no files to inspect"
    first, metas, lengths = None, [], []
    for p in paths:
        clip, meta = load_record(p)
        if first is None:
            first = (p, clip.shape[-1])
        elif clip.shape[-1] != first[1]:
            raise ValueError(f"mixed channel counts: {first[0]} has {first[1]} channels, {p} has {clip.shape[-1]}")
        metas.append(meta)
        lengths.append(int(clip.shape[0]))

    def common(key):
        values = {repr(m.get(key)) for m in metas}
        return metas[0].get(key) if len(values) == 1 else None

    channels = common("channels")
    return {
        "channels": list(channels) if channels is not None else [f"c{i}" for i in range(first[1])],
        "pt_frames": common_length(lengths),
        "audiomethod": common("audiomethod"),
        "frequency_param": common("frequency_param"),
        "sample_rate": common("sample_rate"),
        "fps": common("fps"),
        "lengths": lengths,
    }


def common_length(lengths):
    """The T all files share, or None if they differ."""
    return lengths[0] if lengths and len(set(lengths)) == 1 else None


def split_indices(labels, *, test_size, val_size, seed):
    """Stratified, seeded split -> (train, val, test) index lists. Sizes are fractions of all files."""
    from collections import Counter

    from sklearn.model_selection import train_test_split

    assert 0 < test_size < 1 and 0 < val_size < 1 and test_size + val_size < 1, \
        f"test_size {test_size} and val_size {val_size} must be in (0, 1) and sum to less than 1"
    counts = Counter(labels)
    shown = ", ".join(f"{k}={counts[k]}" for k in sorted(counts))
    if len(counts) < 2:
        raise ValueError(f"need at least two classes, found {len(counts)} ({shown})")
    n = len(labels)
    # each class needs a file in each part, and each part needs at least one file per class
    n_test = int(round(test_size * n)) if test_size * n >= 1 else 1
    n_val = int(round(val_size * n)) if val_size * n >= 1 else 1
    small = min(counts, key=lambda k: (counts[k], k))
    if counts[small] < 3 or n_test < len(counts) or n_val < len(counts) or n - n_test - n_val < len(counts):
        raise ValueError(f"class '{small}' too small for a stratified train/val/test split with test_size "
                         f"{test_size}, val_size {val_size} (counts: {shown}; need >= 3 per class and "
                         f"parts of >= {len(counts)} files)")
    idx = list(range(n))
    try:
        rest, test = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
        rest_labels = [labels[i] for i in rest]
        train, val = train_test_split(rest, test_size=val_size / (1 - test_size), stratify=rest_labels,
                                      random_state=seed)
    except ValueError as e:
        raise ValueError(f"class too small for a stratified split (counts: {shown}): {e}") from None
    return sorted(train), sorted(val), sorted(test)


class FMRGBDataset(Dataset):
    """(video, label) pairs; video is `transform`ed (see the module docstring)."""

    def __init__(self, paths, labels, *, frames=32, size=64, mean=None, std=None, layout="cthw"):
        assert len(paths) == len(labels), f"{len(paths)} paths but {len(labels)} labels"
        assert layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {layout!r}"
        self.paths, self.labels = [Path(p) for p in paths], [int(y) for y in labels]
        self.frames, self.size, self.layout = frames, size, layout
        self.mean, self.std = mean, std

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        clip, _ = load_record(self.paths[i])
        C = clip.shape[-1]
        mean = self.mean if self.mean is not None else [0.0] * C
        std = self.std if self.std is not None else [1.0] * C
        x = transform(clip, frames=self.frames, size=self.size, mean=mean, std=std, layout=self.layout)
        return x, self.labels[i]


class _StatsItems(Dataset):
    """Per-file channel sums (float64) of the picked + resized frames: the small things to add up."""

    def __init__(self, paths, frames, size):
        self.paths, self.frames, self.size = list(paths), frames, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        clip, _ = load_record(self.paths[i])
        x = pick_and_resize(clip, frames=self.frames, size=self.size).double()  # (T, C, S, S)
        return x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3)), x[:, 0].numel()


def compute_stats(paths, *, frames=32, size=64, num_workers=0):
    """Per-channel (mean, std) lists over the picked + resized frames of `paths` (the training
    files), streamed one file at a time into float64 sums."""
    assert len(paths) > 0, "no files to compute statistics from"
    loader = DataLoader(_StatsItems(paths, frames, size), batch_size=None, shuffle=False,
                        num_workers=num_workers)
    total = total_sq = None
    count = 0
    for s, sq, n in loader:
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += int(n)
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0)
    std = var.sqrt()
    std = torch.where(std < MIN_STD, torch.ones_like(std), std)
    return mean.tolist(), std.tolist()


# ----------------------------------------------------------------------------- a training run's data

@dataclasses.dataclass(frozen=True)
class Prepared:
    """The files of a run, split: `train`, `val`, `test` index into `paths`/`labels` (class indices
    into `classes`); `info` is inspect_files' summary with "pt_frames" of the training files;
    `mean`/`std` are the training files' channel statistics."""
    paths: list
    labels: list
    classes: list
    train: list
    val: list
    test: list
    info: dict
    mean: list
    std: list

    def subset(self, part, *, frames, size, layout):
        """An FMRGBDataset of one part ("train", "val" or "test"), normalised with the training statistics."""
        idx = getattr(self, part)
        return FMRGBDataset([self.paths[i] for i in idx], [self.labels[i] for i in idx], frames=frames, size=size,
                            mean=self.mean, std=self.std, layout=layout)


def prepare_data(data, *, test_size, val_size, seed, frames, size, num_workers=0, stats=None, ctx=None):
    """Find, check, split the files and compute the training set's channel statistics -> Prepared.

    `stats=(mean, std)` reuses given statistics (resuming) instead of computing them.
    Under DDP (`ctx`) process 0 computes the statistics and broadcasts them (one pass over the
    training files instead of one per process, and bitwise the same numbers everywhere); an error
    there is raised on every process, so none waits forever."""
    paths, names = find_data(data)
    classes = class_names(names)
    train, val, test = split_indices(names, test_size=test_size, val_size=val_size, seed=seed)
    info = inspect_files(paths)
    info["pt_frames"] = common_length([info["lengths"][i] for i in train])
    if stats is None:
        ddp = ctx is not None and ctx.ddp
        result = None
        if not ddp or ctx.master:
            try:
                result = ("ok", compute_stats([paths[i] for i in train], frames=frames, size=size,
                                              num_workers=num_workers))
            except (ValueError, RuntimeError, FileNotFoundError) as e:
                if not ddp:
                    raise
                result = (type(e).__name__, str(e))
        kind, stats = broadcast_object(result, ctx) if ddp else result
        if kind != "ok":
            raise {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}.get(kind, RuntimeError)(stats)
    mean, std = stats
    return Prepared(paths=paths, labels=[classes.index(n) for n in names], classes=classes, train=train, val=val,
                    test=test, info=info, mean=list(mean), std=list(std))
