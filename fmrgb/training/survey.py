"""Listing and surveying the data of a training run: which files --data names, what each holds, whether
they stack, which belong together. The survey reads top to bottom: list, read, check, group.

    survey = survey_data("data/")                  # listed, read once, checked and grouped -> Survey
    survey.paths, survey.names, survey.labels, survey.classes, survey.groups, survey.info["channels"]

or step by step:

    listing = list_data("data/")                   # folder: label = parent folder; or a CSV path,label[,group]
    records = read_records(listing.paths, group=True, ctx=ctx)   # each file read once, each process its share
    info = inspect_files(listing.paths, records)   # channel names, frames, ... (checks they agree)
    grouping = group_files(listing.paths, user_groups=listing.groups, keys=[r[2] for r in records])

Files are grouped when they are the same file (one path twice, hard links), hold identical frames, come from
one source video wherever they lie (the same source_sha256; a resized copy's record also carries its
original's, original_sha256), are an original and its resized_ copy (records whose source videos are X.<ext>
and resized_X.mp4 in one folder), or share a CSV `group` value: fmrgb.training.splits then keeps each group in one
part, since copies of one clip on both sides would let the test score measure memory instead of learning.
"""
import csv
import dataclasses
import hashlib
import os
from collections import Counter
from pathlib import Path

import numpy as np

from fmrgb.training.distributed import on_every_process, on_master
from fmrgb.files import RESIZED_PREFIX, find_files
from fmrgb.prepare.record import SUFFIX, SoundScale, generic_channels, load_record
from fmrgb.training.splits import keep_saved


# ----------------------------------------------------------------------------- listing

@dataclasses.dataclass(frozen=True)
class Listing:
    """The files of --data: `paths` to read, `names` as found under the folder (relative to it) or as
    written in the CSV (what split.json records), `labels` (class names), `groups` (a CSV's group
    column, or None)."""
    paths: list
    names: list
    labels: list
    groups: list = None
    parts: list = None     # a predefined split: "train", "val" or "test" per file (None: none)
    layout: str = ""       # which predefined split was read, in words

    def subset(self, keep):
        """The Listing of the files at the indices `keep`."""
        def pick(values):
            return None if values is None else [values[i] for i in keep]

        return Listing(pick(self.paths), pick(self.names), pick(self.labels), pick(self.groups), pick(self.parts),
                       self.layout)


def folder_layout(data):
    """The part folders at the top of a data folder that holds a predefined split (train/ and val/ and/or
    test/, class folders below), or None for a folder of class folders."""
    tops = {p.name for p in Path(data).iterdir() if p.is_dir()}
    return sorted(tops & {"train", "val", "test"}) if "train" in tops and tops & {"val", "test"} else None


def _layout_listing(data, paths):
    """The Listing of a folder with a predefined split: each file's part is its top folder, its class the
    folder it lies in (train/Fight/x.pt: part train, class Fight)."""
    rel = [p.relative_to(data) for p in paths]
    for r in rel:
        if r.parts[0] not in ("train", "val", "test") or len(r.parts) < 3:
            raise ValueError(f"{data}: {r.as_posix()} is not in a class folder under train/, val/ or test/ (a data "
                             f"folder with train/ and val/ or test/ at the top holds class folders below them)")
    tops = folder_layout(data)
    return Listing(paths, [r.as_posix() for r in rel], [p.parent.name for p in paths],
                   parts=[r.parts[0] for r in rel], layout=f"folder layout {' '.join(t + '/' for t in tops)}")


def list_data(data, *, on_skip=None):
    """The files of --data as a Listing: every *.pt below a folder (label = the file's parent folder's name),
    or the rows of a CSV with columns path,label (paths relative to the CSV's folder, or absolute). A CSV may
    add a `group` column (files of one group, e.g. clips cut from one source video, are never split apart);
    a CSV listing a file twice is a ValueError. A folder left out (a symlink, unreadable) is passed to
    on_skip(folder, why) (fmrgb.files.find_files), for the script to name it."""
    data = Path(data)
    if data.is_dir():
        paths = find_files(data, {".pt"}, on_skip=on_skip)
        if not paths:
            raise ValueError(f"{data}: no .pt files below this folder")
        if folder_layout(data):
            return _layout_listing(data, paths)
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
    if "split" not in fields:
        return Listing(paths, names, labels, groups)
    parts = [row["split"].lower() for row in rows]
    for n, part in enumerate(parts, start=2):
        if part not in ("train", "val", "test"):
            raise ValueError(f"{data}: line {n}: split '{part}' is not train, val or test")
    return Listing(paths, names, labels, groups, parts, "CSV split column")


def class_names(labels):
    """Sorted class names: a class's index is its place in this list (stable across runs)."""
    return sorted(set(labels))


# ----------------------------------------------------------------------------- reading and checking

def read_records(paths, *, group=False, ctx=None):
    """Each record read once (under DDP, every process its share rank::world) -> [(frames shape, metadata,
    file_keys if `group`, else None)] in the order of `paths`, on every process: what inspect_files and
    group_files need, the frames hashed by the processes together instead of process 0 alone."""
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None and ctx.ddp else (0, 1)

    def share():
        out = []
        for p in paths[rank::world]:
            frames, meta = load_record(p)
            out.append((tuple(frames.shape), meta, file_keys(p, frames, meta) if group else None))
        return out

    shares = on_every_process(share, ctx)
    return [shares[i % world][i // world] for i in range(len(paths))]


def inspect_files(paths, records=None):
    """Check every file can be read and that all have the same channels; return what they share:
    {"channels", "pt_frames" (common T or None), "audiomethod", "frequency_param", "sample_rate", "fps"}
    (a setting the files disagree on, or that they lack, is None) and "lengths" (each file's T).
    `records`: read_records(paths), when read already."""
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
    --frequency_param, or on another sound scale (record.SoundScale: a frequency value or a mel band
    would mean other Hz). Stacking them would feed one input channel different quantities."""
    def kind(meta):
        names = "unnamed channels" if generic_channels(meta["channels"]) else "channels " + ",".join(meta["channels"])
        scale = SoundScale.of(meta)
        return (names, f"audiomethod {meta.get('audiomethod')}", f"frequency_param {meta.get('frequency_param')}",
                f"sound scale {scale.describe() if scale else 'unknown'}")

    first = kind(metas[0])
    for p, meta in zip(paths, metas):
        for mine, theirs in zip(first, kind(meta)):
            if mine != theirs:
                raise ValueError(f"mixed conversions: {paths[0]} has {mine}, {p} has {theirs} "
                                 f"(convert every file with the same settings)")


def common_length(lengths):
    """The T all files share, or None if they differ."""
    return lengths[0] if lengths and len(set(lengths)) == 1 else None


# ----------------------------------------------------------------------------- groups

@dataclasses.dataclass(frozen=True)
class Grouping:
    groups: tuple      # a group id per file (the index of the group's first file)
    reasons: dict      # why files were joined: {"same file": n, "identical frames": n, ...} (files joined)

    def summary(self):
        n, k = len(self.groups), len(set(self.groups))
        why = ", ".join(f"{reason} {count}" for reason, count in self.reasons.items() if count)
        return f"{n} files in {k} groups" + (f" (files joined: {why})" if why else "")


DIGEST_FRAMES = 8  # frames hashed per record: two clips alike in all of them are the same clip


def frames_digest(frames):
    """A fingerprint of a record's frames: its shape and the raw bytes of DIGEST_FRAMES evenly spaced
    frames, read straight from the memory map. Hashing every frame would read the whole data set on
    every run; a false match could only join two files into one group, never let a twin straddle."""
    h = hashlib.blake2b(str(tuple(frames.shape)).encode(), digest_size=20)
    picks = np.unique(np.linspace(0, frames.shape[0] - 1, DIGEST_FRAMES).round().astype(np.int64))
    h.update(np.ascontiguousarray(frames.numpy()[picks]).data)
    return h.hexdigest()


def _video_keys(path, meta):
    """(kind, key): "copy" with the original's name for a resized_ record, else "original" with the
    names a resized copy of it would carry (resized_X.mp4 comes from X.mp4 or from X = a.avi)."""
    source = str(meta.get("source") or Path(path).name.removesuffix(SUFFIX))
    folder = str(Path(path).resolve().parent)
    if source.startswith(RESIZED_PREFIX) and source.endswith(".mp4"):
        return "copy", [(folder, source[len(RESIZED_PREFIX):-len(".mp4")])]
    return "original", [(folder, source), (folder, Path(source).stem)]


def file_keys(path, frames, meta):
    """What may join a record (its `frames` and `meta` as read) to others: ((device, inode), digest of its
    frames, _video_keys, the SHA-256s of its source video and, for a resized copy, of its original), computed
    where the record is read (under DDP, by the process whose share it is)."""
    st = os.stat(path)
    shas = tuple(str(meta[k]) for k in ("source_sha256", "original_sha256") if meta.get(k))
    return (st.st_dev, st.st_ino), frames_digest(frames), _video_keys(path, meta), shas


def crossing_groups(names, groups, parts):
    """The groups a given split ({"train", "val", "test"} index lists) cuts: [[(file name, part), ...]] of each
    group whose files lie in more than one part."""
    where = {i: part for part, idx in parts.items() for i in idx}
    members = {}
    for i, g in enumerate(groups):
        if i in where:
            members.setdefault(g, []).append(i)
    return [[(names[i], where[i]) for i in m] for m in members.values() if len({where[i] for i in m}) > 1]


def crossing_lines(names, groups, parts, shown=5):
    """[one line naming the files of each group a predefined split cuts (crossing_groups; `shown` groups at
    most)], or [] when it cuts none (or `groups` is None: not grouped)."""
    cut = [] if groups is None else crossing_groups(names, groups, parts)
    if not cut:
        return []
    listed = "; ".join(" ~ ".join(f"{n} ({p})" for n, p in g) for g in cut[:shown])
    more = f"; and {len(cut) - shown} more" if len(cut) > shown else ""
    return [f"note: {len(cut)} group(s) of copies of one video cross the predefined split (used as given): "
            f"{listed}{more}"]


def group_files(paths, *, user_groups=None, keys=None):
    """Grouping of `paths` (records): union of the same file, identical frames, one source video, original +
    resized copy and, with `user_groups` (a value or None per file, e.g. a CSV's group column), equal values.
    `keys`: each path's file_keys when the records were read already (read_records; None: read here)."""
    parent = list(range(len(paths)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reasons = Counter()

    def join(i, j, reason):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
            reasons[reason] += 1

    firsts = {}  # (reason, key) -> first file with it
    originals, copies = {}, []
    for i, p in enumerate(paths):
        inode, digest, (kind, names), shas = keys[i] if keys is not None else file_keys(p, *load_record(p))
        joins = [("same file", inode), ("identical frames", digest), *(("same source video", h) for h in shas)]
        if user_groups is not None and user_groups[i] not in (None, ""):
            joins.append(("CSV group", user_groups[i]))
        for key in joins:
            join(i, firsts.setdefault(key, i), key[0])
        if kind == "copy":
            copies.append((i, names[0]))
        else:
            for name in names:
                originals.setdefault(name, []).append(i)
    for i, name in copies:
        for j in originals.get(name, []):
            join(i, j, "resized copies")
    order = ("same file", "identical frames", "same source video", "resized copies", "CSV group")
    return Grouping(groups=tuple(find(i) for i in range(len(paths))), reasons={r: reasons[r] for r in order})


# ----------------------------------------------------------------------------- the survey

@dataclasses.dataclass(frozen=True)
class Survey:
    """Every file a run uses, listed and checked once: `paths`, `names` (as listed: split.json's
    entries), `labels` (class indices into `classes`), `info` (inspect_files), `groups` (a group id per
    file, group_files; None when not asked for), `grouping` (its summary line), `ignored` (files
    of the folder left out because a resumed run's split does not hold them), the data's own split if it has
    one (`parts`, `layout`)."""
    paths: list
    names: list
    labels: list
    classes: list
    info: dict
    groups: list = None
    grouping: str = ""
    ignored: int = 0
    parts: list = None     # the data's own split, a part name per file (Listing.parts; None: none)
    layout: str = ""       # where that split comes from, in words

    @property
    def label_names(self):
        return [self.classes[k] for k in self.labels]


def survey_data(data, *, saved=None, saved_by="--resume", group=True, ctx=None, on_skip=None):
    """List --data (list_data; folders left out go to `on_skip`), check the files (inspect_files) and group
    them (group_files) -> Survey. `saved`: a resumed run's split ({"train": names, ...}): only its files are
    used (a SplitError names those that are gone, and `saved_by`, the flag that gave the split). Under
    DDP (`ctx`) process 0 lists the files and every process reads its share of them (read_records)."""
    def listed():
        listing, ignored = list_data(data, on_skip=on_skip), 0
        if saved is not None:
            keep, ignored = keep_saved(listing.names, saved, saved_by)
            listing = listing.subset(keep)
        return listing, ignored

    listing, ignored = on_master(listed, ctx)
    records = read_records(listing.paths, group=group, ctx=ctx)
    info = inspect_files(listing.paths, records)
    grouping = group_files(listing.paths, user_groups=listing.groups, keys=[r[2] for r in records]) if group else None
    classes = class_names(listing.labels)
    return Survey(paths=listing.paths, names=listing.names, labels=[classes.index(n) for n in listing.labels],
                  classes=classes, info=info, groups=None if grouping is None else list(grouping.groups),
                  grouping="" if grouping is None else grouping.summary(), ignored=ignored, parts=listing.parts,
                  layout=listing.layout)
