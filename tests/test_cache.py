"""The training cache (fmrgb.training.cache): small clips made as the evaluation makes them, reused while their
record stays the same, never served for a record that changed, was replaced or removed."""
import os
import shutil
import time

import numpy as np
import pytest
import torch

import fmrgb.training.cache as cache_module
import train
from conftest import pt_dict, read_csv, write_dataset
from dataset import FMRGBDataset, compute_stats
from fmrgb.training.augment import Augment
from fmrgb.training.cache import CACHE_DIR, ClipCache, clip_sums
from fmrgb.training.clip import ClipRecipe, normalise, small_clip
from fmrgb.prepare.record import load_record

RECIPE = ClipRecipe(frames=4, size=8)


def write_record(path, seed, T=12, H=16, W=20, C=5):
    g = torch.Generator().manual_seed(seed)
    torch.save(pt_dict(torch.randint(0, 256, (T, H, W, C), dtype=torch.uint8, generator=g)), path)
    return path


def other_content(record, tmp_path, seed):
    """The bytes of another record of the same size (saved under the same name: torch.save writes it in)."""
    (tmp_path / "other").mkdir(exist_ok=True)
    data = write_record(tmp_path / "other" / record.name, seed=seed).read_bytes()
    assert len(data) == record.stat().st_size and data != record.read_bytes()
    return data


def settle(path, tmp_path):
    """Wait (briefly) until the filesystem's clock has moved past the record's last change, so that a
    later change gets another time stamp: the file-time granularity the cache's settle_s stands for."""
    probe = tmp_path / "clock-probe"
    while True:
        probe.write_bytes(b"")
        if probe.stat().st_mtime_ns > os.stat(path).st_ctime_ns:
            return
        time.sleep(0.001)


def expected(path, recipe=RECIPE):
    frames, meta = load_record(path)
    return small_clip(frames, recipe, names=meta["channels"]).numpy()


def never(path):
    raise AssertionError(f"{path} was read although its small clip is stored")


@pytest.fixture
def record(tmp_path):
    (tmp_path / "data").mkdir()
    path = write_record(tmp_path / "data" / "a.pt", seed=1)
    settle(path, tmp_path)
    return path


def test_entries_are_reused_by_a_later_run_with_the_same_settings(record):
    first = ClipCache.beside(record.parent, RECIPE, settle_s=0).small(record)
    entry = ClipCache.beside(record.parent, RECIPE, settle_s=0).entry(record)
    assert entry.is_file() and entry.parent.parent == record.parent / CACHE_DIR
    again = ClipCache.beside(record.parent, RECIPE, settle_s=0).small(record, load=never)  # a new run
    assert isinstance(again, np.memmap) and np.array_equal(again, first) and np.array_equal(first, expected(record))


def test_other_frames_size_or_steps_get_their_own_folder(record):
    folders = {ClipCache.beside(record.parent, r).folder for r in
               [RECIPE, ClipRecipe(frames=8, size=8), ClipRecipe(frames=4, size=16), ClipRecipe(4, 8, steps=1)]}
    assert len(folders) == 4
    ClipCache.beside(record.parent, RECIPE, settle_s=0).small(record)
    other = ClipCache.beside(record.parent, ClipRecipe(frames=4, size=16), settle_s=0)
    assert other.get(record) is None and other.small(record).shape == (12, 5, 16, 16)


def test_a_record_rewritten_in_place_with_other_content_is_not_served_stale(record, tmp_path):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)
    old = np.array(cache.small(record))
    size = record.stat().st_size
    with open(record, "r+b") as f:  # the same file, the same size, other frames
        f.write(other_content(record, tmp_path, seed=2))
    assert record.stat().st_size == size
    assert cache.get(record) is None
    new = cache.small(record)
    assert np.array_equal(new, expected(record)) and not np.array_equal(new, old)


def test_a_record_replaced_by_a_new_file_is_not_served_stale(record, tmp_path):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)
    old = np.array(cache.small(record))
    os.replace(write_record(tmp_path / "new.pt", seed=3), record)
    assert cache.get(record) is None
    assert not np.array_equal(cache.small(record), old)


def test_a_record_touched_back_to_its_old_time_is_not_served_stale(record, tmp_path):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)
    old = np.array(cache.small(record))
    st = record.stat()
    with open(record, "r+b") as f:
        f.write(other_content(record, tmp_path, seed=4))
    os.utime(record, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old size and modification time again
    assert (record.stat().st_size, record.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert cache.get(record) is None
    assert np.array_equal(cache.small(record), expected(record)) and not np.array_equal(cache.small(record), old)


def test_a_removed_record_has_no_entry(record):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)
    cache.small(record)
    record.unlink()
    assert cache.get(record) is None
    with pytest.raises(FileNotFoundError):
        cache.small(record)


def test_a_record_changed_within_the_settle_time_is_used_but_not_stored(tmp_path):
    (tmp_path / "data").mkdir()
    record = write_record(tmp_path / "data" / "a.pt", seed=5)
    cache = ClipCache.beside(record.parent, RECIPE)  # the default settle time: this record is seconds younger
    assert np.array_equal(cache.small(record), expected(record))
    assert cache.get(record) is None and not cache.folder.exists()
    # a rewrite in the same clock tick would keep the identity: had it been stored, it would be served stale
    with open(record, "r+b") as f:
        f.write(other_content(record, tmp_path, seed=6))
    assert np.array_equal(cache.small(record), expected(record))


def test_an_interrupted_write_leaves_no_entry(record, monkeypatch):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)

    def dies(f, array, **kw):
        f.write(b"\x93NUMPY half a header")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        cache.small(record)
    monkeypatch.undo()
    assert cache.get(record) is None
    assert [p.name for p in cache.folder.iterdir()] == []  # no entry, no leftover part file
    assert np.array_equal(cache.small(record), expected(record)) and cache.get(record) is not None


def test_an_entry_of_another_shape_is_not_used(record):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)
    key = cache.key(record)
    cache.put(key, np.zeros((3, 5, 8, 8), np.uint8))  # e.g. written by a build with other steps
    assert cache.get(record) is None
    assert np.array_equal(cache.small(record), expected(record))


def test_a_csv_keeps_its_cache_beside_it(tmp_path):
    csv = tmp_path / "lists" / "train.csv"
    csv.parent.mkdir()
    csv.write_text("path,label\n")
    assert ClipCache.beside(csv, RECIPE).folder.parent == tmp_path / "lists" / CACHE_DIR


def test_a_record_changed_while_it_is_read_is_not_stored_under_its_new_identity(record, tmp_path):
    cache = ClipCache.beside(record.parent, RECIPE, settle_s=0)
    new_bytes = other_content(record, tmp_path, seed=7)

    def read_then_changed(path):  # another process rewrites the record just after this one read it
        frames, meta = load_record(path)
        frames = frames.clone()
        with open(path, "r+b") as f:
            f.write(new_bytes)
        return frames, meta

    cache.small(record, load=read_then_changed)
    assert cache.get(record) is None  # the old frames are not taken for the new content
    assert np.array_equal(cache.small(record), expected(record))


# ----------------------------------------------------------------------------- the cache in training

def test_cached_items_are_the_uncached_ones(tmp_path):
    paths = write_dataset(tmp_path / "data", per_class=2, T=9, H=20, W=24)
    settle(paths[-1], tmp_path)
    cache = ClipCache.beside(tmp_path / "data", ClipRecipe(frames=4, size=8), settle_s=0)
    kw = dict(frames=4, size=8, mean=[0.3] * 3, std=[0.2] * 3, layout="cthw", channels=[0, 3, 4])
    plain, cached = FMRGBDataset(paths, [0] * 4, **kw), FMRGBDataset(paths, [0] * 4, cache=cache, **kw)
    for i in range(4):
        assert torch.equal(cached[i][0], plain[i][0])  # evaluation: bitwise the same, cached or not
    assert len(list(cache.folder.iterdir())) == 4
    raw = FMRGBDataset(paths, [0] * 4, cache=cache, uint8=True, **kw)
    x = torch.stack([raw[i][0] for i in range(4)])  # a uint8 batch (B, T, C, S, S), normalised at once
    assert x.dtype == torch.uint8 and x.shape == (4, 4, 3, 8, 8)
    assert torch.equal(normalise(x, mean=kw["mean"], std=kw["std"], layout="cthw"),
                       torch.stack([plain[i][0] for i in range(4)]))
    aug = Augment(roles=("picture", "plane", "plane"))
    train_plain, train_cached = (FMRGBDataset(paths, [0] * 4, augment=aug, cache=c, **kw) for c in (None, cache))
    torch.manual_seed(3)
    a = [train_plain[i][0] for i in range(4)]
    torch.manual_seed(3)
    assert all(torch.equal(train_cached[i][0], a[i]) for i in range(4))  # the same draws, the same clips


def test_the_statistics_pass_fills_the_cache_and_matches_the_uncached_statistics(tmp_path):
    paths = write_dataset(tmp_path / "data", per_class=3, T=7, H=12, W=16)
    settle(paths[-1], tmp_path)
    cache = ClipCache.beside(tmp_path / "data", ClipRecipe(frames=3, size=6), settle_s=0)
    stats = compute_stats(paths[:4], frames=3, size=6, cache=cache)
    assert [cache.get(p) is not None for p in paths] == [True] * 4 + [False] * 2  # the others: when first read
    assert stats == compute_stats(paths[:4], frames=3, size=6)  # exactly: integer sums either way
    assert compute_stats(paths[:4], frames=3, size=6, cache=cache) == stats  # read back from the cache


def test_shares_of_the_statistics_pass_add_up_to_the_whole(tmp_path):
    paths = write_dataset(tmp_path / "data", per_class=3, T=7, H=12, W=16)
    recipe = ClipRecipe(frames=3, size=6)
    whole, n = clip_sums(paths, recipe)
    shares = [clip_sums(paths, recipe, rank=r, world=4) for r in range(4)]  # 2, 2, 1 and 1 files
    assert torch.equal(sum(s for s, _ in shares), whole) and sum(k for _, k in shares) == n == 6 * 3 * 6 * 6
    assert clip_sums(paths[:2], recipe, rank=2, world=3) == (None, 0)  # no share at all


def test_a_second_run_reuses_the_cache_and_none_or_a_folder_can_be_chosen(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "SETTLE_S", 0)
    paths = write_dataset(tmp_path / "data", per_class=6, T=8, H=16, W=16)
    settle(paths[-1], tmp_path)
    common = ["--frames", "4", "--size", "8", "--num_workers", "0", "--device", "cpu", "--epochs", "2",
              "--test_size", "0.25", "--islearnrate_search", "false"]

    def run(out, *extra):
        args = train.get_args_parser().parse_args(["--data", str(tmp_path / "data"), "--out", str(out), *common,
                                                   *extra])
        assert train.main(args) == 0

    run(tmp_path / "a")
    folder = tmp_path / "data" / CACHE_DIR / "v3-f4x3-s8"  # the cache's version, frames x steps, size
    entries = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert len(entries) == 12  # every file: training, validation and test
    run(tmp_path / "b")
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == entries  # read, not made again
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()
    shutil.rmtree(tmp_path / "data" / CACHE_DIR)
    run(tmp_path / "c", "--cache", "none")
    assert not (tmp_path / "data" / CACHE_DIR).exists()
    assert (tmp_path / "c" / "metrics.json").read_text() == (tmp_path / "a" / "metrics.json").read_text()
    run(tmp_path / "d", "--cache", str(tmp_path / "elsewhere"))
    assert len(list((tmp_path / "elsewhere" / folder.name).iterdir())) == 12
    history = read_csv(tmp_path / "d" / "history.csv")
    assert all(0 <= float(h["data_s"]) <= float(h["seconds"]) for h in history)


def test_a_cache_that_cannot_be_written_is_left_out_with_a_note(tmp_path, capsys):
    write_dataset(tmp_path / "data", per_class=6, T=8, H=16, W=16)
    (tmp_path / "a_file").write_text("")
    args = train.get_args_parser().parse_args(
        ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--frames", "4", "--size", "8",
         "--num_workers", "0", "--device", "cpu", "--epochs", "1", "--test_size", "0.25",
         "--cache", str(tmp_path / "a_file" / "cache")])  # a folder inside a file: never writable
    assert train.main(args) == 0
    assert "note: no cache (" in capsys.readouterr().out
    assert (tmp_path / "run" / "metrics.json").is_file()
