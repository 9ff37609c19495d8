"""bench.py's `small` part (fmrgb.training.smallrecords): a --size/--frames conversion of clips against its floor,
the bytes per clip against the video's and a full-size record's, and the training loader on such records."""
import json

import pytest
from conftest import run_script

from fmrgb.prepare.diskspace import RECORD_HEADER
from fmrgb.prepare.record import SUFFIX
from fmrgb.training.smallrecords import bench_small_records


def test_the_figures_are_the_records_and_videos_own(tmp_path):
    sr = bench_small_records(tmp_path, clips=2, seconds=0.5, source=(96, 64), frames=6, size=16, repeats=1)
    records = sorted(tmp_path.glob(f"*{SUFFIX}"))
    videos = sorted(tmp_path.glob("*.mp4"))
    assert len(records) == len(videos) == 2
    assert sr.record_bytes == sum(p.stat().st_size for p in records) / 2  # the files on the disk
    assert 6 * 16 * 16 * 5 < sr.record_bytes < 6 * 16 * 16 * 5 + RECORD_HEADER  # frames x size² x 5 and a header
    assert sr.video_bytes == sum(p.stat().st_size for p in videos) / 2
    assert sr.full_record_bytes == 15 * 64 * 96 * 5 + RECORD_HEADER  # 15 frames of 96x64 as they decode
    assert sr.floor_s > 0 and sr.convert_s > 0 and sr.cache_build_s > 0
    assert min(sr.loader_clips_per_s.values()) > 0
    summary = sr.summary()
    assert summary["convert_vs_floor"] == pytest.approx(sr.convert_s / sr.floor_s)
    assert summary["record_vs_video"] == pytest.approx(sr.record_bytes / sr.video_bytes)
    names = [r[0] for r in sr.rows()]
    assert names[1] == "create_fmrgbdata --size 16 --frames 6" and len(names) == 6


def test_bench_py_runs_the_small_part_alone_and_keeps_its_figures(tmp_path):
    out = tmp_path / "bench.json"
    done = run_script("bench.py", "--clips", 1, "--seconds", 0.5, "--size", "64x48", "--skip", "convert", "resize",
                      "memory", "dataset", "train", "realtime", "--small_clips", 1, "--small_source", "96x64",
                      "--warm_mb", 0, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "create_fmrgbdata --size 112 --frames 32" in done.stdout and "loader clips/s" in done.stdout
    small = json.loads(out.read_text())["small_records"]
    assert (small["frames"], small["size"], small["source"]) == (32, 112, [96, 64])  # the recommended record
    assert 32 * 112 * 112 * 5 < small["record_bytes"] < 32 * 112 * 112 * 5 + RECORD_HEADER
    assert small["convert_s"] > 0 and small["floor_s"] > 0
