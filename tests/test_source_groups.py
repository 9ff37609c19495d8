"""Copies grouped by content: records of one source video (the same source_sha256, a resized copy's
original_sha256) form one group wherever they lie; a predefined split that cuts a group is reported."""
import json
import shutil

import torch

import train
from conftest import ROOT, digest, load_pt, pt_dict, run_script, tiny, write_dataset
from fmrgb.training.survey import crossing_groups, group_files


def record(path, seed, **meta):
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = torch.randint(0, 256, (4, 8, 8, 5), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    torch.save(pt_dict(frames, **meta), path)
    return path


def test_records_of_one_source_video_group_wherever_they_lie(tmp_path):
    paths = [record(tmp_path / "a/x.mp4.pt", 1, source="x.mp4", source_sha256="aa"),
             record(tmp_path / "b/other_name.mp4.pt", 2, source="other_name.mp4", source_sha256="aa"),  # 2nd copy
             record(tmp_path / "c/resized_z.mp4.pt", 3, source="resized_z.mp4", source_sha256="cc",
                    original_sha256="bb"),
             record(tmp_path / "d/z.avi.pt", 4, source="z.avi", source_sha256="bb"),  # the copy's original
             record(tmp_path / "e/y.mp4.pt", 5, source="y.mp4", source_sha256="dd")]
    g = group_files(paths).groups
    assert g[0] == g[1] and g[2] == g[3] and len({g[0], g[2], g[4]}) == 3
    assert group_files(paths).reasons["same source video"] == 2
    assert crossing_groups([p.name for p in paths], g, {"train": [0, 2, 3], "val": [4], "test": [1]}) == [
        [("x.mp4.pt", "train"), ("other_name.mp4.pt", "test")]]


def test_a_predefined_split_that_cuts_a_group_is_reported_in_one_line_and_used(tmp_path, capsys):
    root = tmp_path / "rwf"
    for part, n in (("train", 6), ("val", 2)):
        write_dataset(root / part, per_class=n, T=4, H=8, W=8, classes=("Fight", "NonFight"), seed=len(part))
    copy = load_pt(root / "train/Fight/Fight_00.pt")
    copy["source_sha256"] = "same"
    torch.save(copy, root / "train/Fight/Fight_00.pt")
    other = load_pt(root / "val/Fight/Fight_01.pt")
    other["source_sha256"] = "same"
    torch.save(other, root / "val/Fight/Fight_01.pt")
    args = train.get_args_parser().parse_args([
        "--data", str(root), "--out", str(tmp_path / "run"), "--frames", "4", "--size", "8", "--num_workers", "0",
        "--device", "cpu", "--epochs", "1"])
    assert train.main(args) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "cross the predefined split" in ln]
    assert lines == ["note: 1 group(s) of copies of one video cross the predefined split (used as given): "
                     "train/Fight/Fight_00.pt (train) ~ val/Fight/Fight_01.pt (test)"]
    assert "val/Fight/Fight_01.pt" in json.loads((tmp_path / "run/split.json").read_text())["test"]


def test_a_resized_copys_record_carries_its_originals_sha256(tmp_path):
    tiny(tmp_path / "v/clip.mp4", seconds=0.5)
    assert run_script("resize_video.py", "--target", tmp_path / "v").returncode == 0
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "v/resized_clip.mp4", tmp_path / "elsewhere/resized_clip.mp4")  # moved elsewhere
    r = run_script("create_fmrgbdata.py", "--target", tmp_path, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    copy, original = load_pt(tmp_path / "elsewhere/resized_clip.mp4.pt"), load_pt(tmp_path / "v/clip.mp4.pt")
    assert copy["original_sha256"] == digest(tmp_path / "v/clip.mp4") == original["source_sha256"]
    assert "original_sha256" not in original
    paths = [tmp_path / "elsewhere/resized_clip.mp4.pt", tmp_path / "v/clip.mp4.pt"]
    assert len(set(group_files(paths).groups)) == 1
