"""The training cache: each record's small uint8 clip (its picked frames, resized), stored once per
(record file, recipe) as a .npy file that later epochs and runs memory-map. This module alone writes
and reads it.

    cache = ClipCache.beside("data/", ClipRecipe(frames=16, size=64))    # data/.fmrgb_cache/v3-f16x3-s64/
    clip = cache.small(path)          # uint8 (frames * steps, C, 64, 64): stored, or made now and stored
    clip[recipe.centres()]            # evaluation: each segment's centre, the frames of segment_indices
    clip[recipe.jittered()]           # training: one of the `steps` candidates of each segment
    cache.frames(path, positions)     # those frames of it only, as a tensor
    picked_frames(path, recipe, positions, cache)   # the same, with or without a cache (what the Dataset takes)
    sums, n = clip_sums(paths, recipe, cache=cache, num_workers=2)   # the statistics pass, building entries

Every channel of a record is kept, so runs that keep other --channels share one cache. A clip
(fmrgb.training.clip.small_clip) holds `steps` candidate frames per time segment, so training can still jitter
in time; the middle one is the segment's centre, the very frame the evaluation takes. Made without a
cache (picked_frames) the same frames have the same values: cached or not, training, evaluation and
predict.py see the same numbers.

Never stale: an entry's name is derived from the record's absolute path and its file identity
(device, inode, size, modification and change times), taken before the record is read, so a changed,
replaced or removed record simply has no entry. A record changed less than `settle_s` ago is used
but not stored: file times are coarse (a clock tick, up to 2 s on some filesystems), and a change
within the same tick would keep the identity. What changed records leave behind is never read;
deleting the folder (any time no run is using it) only costs the time to build it again.
"""
import dataclasses
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fmrgb.training.clip import record_mel_window, small_clip
from fmrgb.files import atomic_output
from fmrgb.prepare.record import load_record

CACHE_DIR = ".fmrgb_cache"
CACHE_VERSION = 3  # bump when the way a small clip is made changes
SETTLE_S = 2.0  # records changed more recently than this are not stored (coarse file times, see above)


def folder_name(recipe):
    """The folder of a recipe's entries: the cache's version, then what a small clip depends on."""
    return f"v{CACHE_VERSION}-f{recipe.frames}x{recipe.steps}-s{recipe.size}"


def file_identity(path):
    """A string that changes whenever the file at `path` is changed, replaced or re-created (given a
    clock tick in between), and the file's change time (ns)."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}", st.st_ctime_ns


@dataclasses.dataclass(frozen=True)
class Key:
    """Where the small clip of one record, as it was when looked at, lives, and whether it may be stored."""
    entry: Path
    storable: bool


class ClipCache:
    def __init__(self, root, recipe, *, settle_s=None):
        self.recipe = recipe
        self.folder = Path(root) / folder_name(recipe)
        self.settle_ns = int((SETTLE_S if settle_s is None else settle_s) * 1e9)

    @classmethod
    def beside(cls, data, recipe, **kw):
        """The cache of a data folder (data/.fmrgb_cache), or of a CSV's folder."""
        data = Path(data)
        return cls((data if data.is_dir() else data.parent) / CACHE_DIR, recipe, **kw)

    @classmethod
    def for_setting(cls, setting, data, recipe):
        """train.py's --cache: None (not given) -> beside the data, "none" -> no cache (None), else that folder."""
        if setting is None:
            return cls.beside(data, recipe)
        return None if str(setting).lower() == "none" else cls(setting, recipe)

    def problem(self):
        """None when entries can be written into the cache's folder, else why not (a read-only disk, ...)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=self.folder).close()
        except OSError as e:
            return f"{self.folder}: {e.strerror or e}"
        return None

    def key(self, path):
        """The record's Key as it is now; take it before reading the record, so that a change made
        while it is read gives the record another name. FileNotFoundError for a missing record."""
        now = time.time_ns()
        identity, ctime = file_identity(path)
        name = f"{Path(path).absolute()}\0{identity}".encode("utf-8", "surrogateescape")
        return Key(self.folder / (hashlib.sha256(name).hexdigest()[:40] + ".npy"), ctime + self.settle_ns <= now)

    def entry(self, path):
        """Where the small clip of the record at `path`, as it is now, lives (it may not exist)."""
        return self.key(path).entry

    def get(self, path):
        """The stored small clip (read-only numpy memory map), or None (none stored, or the record is gone)."""
        try:
            return self._read(self.key(path).entry)
        except FileNotFoundError:
            return None

    def _read(self, entry):
        try:
            clip = np.load(entry, mmap_mode="r")
        except (FileNotFoundError, ValueError, OSError):
            return None  # missing, or unreadable: built again
        r = self.recipe
        shape = (clip.shape[0], *clip.shape[2:]) if clip.ndim == 4 else ()
        good = clip.dtype == np.uint8 and shape == (r.length, r.size, r.size)
        return clip if good else None

    def put(self, key, clip):
        """Store `clip` (uint8, numpy or torch) as the entry of `key` (from key(), taken before the record
        was read); returns the entry's path, or None when the record was too recently changed to store."""
        clip = np.asarray(clip)
        assert clip.dtype == np.uint8, f"cache clips are uint8, not {clip.dtype}"
        if not key.storable:
            return None
        key.entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(key.entry) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(clip), allow_pickle=False)
        return key.entry

    def small(self, path, load=load_record):
        """The small clip (numpy uint8, (frames * steps, C, size, size)) of the record at `path`: the stored
        one, or made from `load(path)` ((frames, metadata), as fmrgb.prepare.record.load_record) and stored."""
        key = self.key(path)
        clip = self._read(key.entry)
        if clip is None:
            frames, meta = load(path)
            clip = small_clip(frames, self.recipe, names=meta.get("channels"),
                              mel_window=record_mel_window(meta, frames.shape[0])).numpy()
            try:
                self.put(key, clip)
            except OSError:  # a full disk costs this clip's next read its speed, not the run
                pass
        return clip

    def frames(self, path, positions):
        """uint8 tensor (len(positions), C, size, size): the small clip's frames at `positions` (small())."""
        return torch.from_numpy(self.small(path)[np.asarray(positions)])  # fancy indexing copies out of the map


def picked_frames(path, recipe, positions, cache=None):
    """uint8 (len(positions), C, size, size): the frames at `positions` of the record's small clip, read from
    `cache` (made and stored there the first time) or, without one, made from the record alone."""
    if cache is not None:
        return cache.frames(path, positions)
    frames, meta = load_record(path)
    return small_clip(frames, recipe, positions, names=meta.get("channels"),
                      mel_window=record_mel_window(meta, frames.shape[0]))


class _Pass(torch.utils.data.Dataset):
    """One record per item: its small clip made (and stored, with a cache), and the int64 channel sums
    (sum, sum of squares) of its evaluation frames and their pixel count per channel."""

    def __init__(self, paths, recipe, cache):
        self.paths, self.recipe, self.cache = paths, recipe, cache

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        x = picked_frames(self.paths[i], self.recipe, self.recipe.centres(), self.cache)
        wide = x.long()  # exact integer sums: the same whatever the order or the sharing of the work
        return torch.stack([wide.sum(dim=(0, 2, 3)), wide.square().sum(dim=(0, 2, 3))]), x[:, 0].numel()


def clip_sums(paths, recipe, *, cache=None, num_workers=0, rank=0, world=1):
    """One parallel pass (`num_workers` DataLoader workers) over this process's share of `paths` (rank::world),
    each record's small clip stored in `cache` (if any) -> (int64 (2, C): the sum and the sum of squares of
    the 0..255 values of each channel's evaluation frames, pixel count per channel); (None, 0) for no share."""
    share = list(paths)[rank::world]
    loader = torch.utils.data.DataLoader(_Pass(share, recipe, cache), batch_size=None,
                                         num_workers=min(num_workers, len(share)))
    total, count = None, 0
    for sums, n in loader:
        total = sums if total is None else total + sums
        count += int(n)
    return total, count
