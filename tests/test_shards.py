"""Preprocessing split across job-array shards gives what one run gives."""
import json

import pytest
import torch

from conftest import REPORT, make_video, run_script
from fmrgb import cli
from fmrgb.prepare import convert, resized
from fmrgb.prepare.scan import scan_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    for i, seconds in enumerate([0.5, 1.0, 0.7, 1.3, 0.4]):
        make_video(root / ("a" if i % 2 else "b") / f"v{i}.mp4", seconds=seconds, size=(64, 48),
                   audio=None if i == 3 else f"0.4*sin(2*PI*{200 + 100 * i}*t)")
    return root


def copy_tree(src, dst):
    for p in src.rglob("*.mp4"):
        (dst / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        (dst / p.relative_to(src)).write_bytes(p.read_bytes())
    return dst


def test_shards_split_the_sorted_list_without_overlap_or_gap():
    items = [f"f{i}" for i in range(11)]
    parts = [cli.shard_of(items, (i, 4)) for i in range(4)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_four_shards_make_exactly_the_files_one_run_makes(tree, tmp_path):
    whole = copy_tree(tree, tmp_path / "whole")
    sharded = copy_tree(tree, tmp_path / "sharded")
    convert.convert_tree(whole, audiomethod="mel", report=REPORT)
    with pytest.raises(ValueError, match="--scan"):
        convert.convert_tree(sharded, shard=(0, 4), report=REPORT)
    scan, failed = scan_tree(sharded, report=REPORT)
    assert not failed and scan["max_frames"] == 39
    assert json.loads((sharded / "fmrgb_scan.json").read_text())["files"]["b/v0.mp4"]["frames"] == 15
    for i in range(4):
        convert.convert_tree(sharded, audiomethod="mel", shard=(i, 4), report=REPORT)
    whole_pts = sorted(p.relative_to(whole) for p in whole.rglob("*.pt"))
    assert whole_pts == sorted(p.relative_to(sharded) for p in sharded.rglob("*.pt")) and len(whole_pts) == 5
    for rel in whole_pts:
        a, b = torch.load(whole / rel, weights_only=True), torch.load(sharded / rel, weights_only=True)
        assert torch.equal(a["frames"], b["frames"]) and a["frames"].shape[0] == 39
        assert {k: v for k, v in a.items() if k != "frames"} == {k: v for k, v in b.items() if k != "frames"}


def test_a_stale_scan_is_refused(tree, tmp_path):
    root = copy_tree(tree, tmp_path / "t")
    scan_tree(root, report=REPORT)
    make_video(root / "a" / "new.mp4", seconds=0.3, size=(64, 48))
    with pytest.raises(ValueError, match="out of date"):
        convert.convert_tree(root, shard=(1, 2), report=REPORT)
    r = run_script("create_fmrgbdata.py", "--target", root, "--shard", "1/2")
    assert r.returncode == 2 and "out of date" in r.stderr
    r = run_script("create_fmrgbdata.py", "--target", root, "--shard", "2/2")
    assert r.returncode == 2 and "0 <= i < n" in r.stderr


def test_resize_shards_cover_every_video_once(tree, tmp_path):
    root = copy_tree(tree, tmp_path / "r")
    total = 0
    for i in range(3):
        counts, failed = resized.resize_videos(root, mag=2, shard=(i, 3), report=REPORT)
        assert not failed
        total += counts.get("resized", 0)
    assert total == 5 and len(list(root.rglob("resized_*.mp4"))) == 5
