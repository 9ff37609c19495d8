"""dataset.py: finding the data, the per-item recipe, statistics, the split and clear errors."""
import csv

import pytest
import torch

from conftest import pt_dict, write_dataset
from dataset import (FMRGBDataset, compute_stats, find_data, frame_indices, inspect_files, pick_and_resize,
                     small_frames, split_indices, transform)
from fmrgb.record import load_record


# ----------------------------------------------------------------------------- finding the data

def test_folder_labels_are_parent_folders_recursively_and_csv_paths_are_relative_to_csv(tmp_path):
    write_dataset(tmp_path / "d" / "nested", per_class=2, classes=("b_class", "a_class"))
    paths, labels = find_data(tmp_path / "d")
    assert len(paths) == 4 and sorted(set(labels)) == ["a_class", "b_class"]
    assert all(p.parent.name == lab for p, lab in zip(paths, labels))

    csv_path = tmp_path / "lists" / "labels.csv"
    csv_path.parent.mkdir()
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerow(["../d/nested/a_class/a_class_00.pt", "yes"])          # relative to the CSV's folder
        w.writerow([str(tmp_path / "d/nested/b_class/b_class_01.pt"), "no"])  # absolute
    paths, labels = find_data(csv_path)
    assert labels == ["yes", "no"]
    assert all(p.is_file() for p in paths)


def test_csv_without_the_columns_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("file,class\na.pt,x\n")
    with pytest.raises(ValueError, match="path,label"):
        find_data(p)


# ----------------------------------------------------------------------------- the recipe

def test_frame_indices_are_evenly_spaced_and_short_clips_repeat_frames():
    assert frame_indices(10, 4).tolist() == [1, 3, 6, 8]  # the centres of 4 segments of 2.5 frames
    assert frame_indices(8, 8).tolist() == list(range(8))
    assert frame_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert frame_indices(1, 3).tolist() == [0, 0, 0]


def test_transform_equals_manual_computation_without_inversion():
    T, H, W, C = 10, 4, 4, 3
    g = torch.Generator().manual_seed(1)
    clip = torch.randint(0, 256, (T, H, W, C), generator=g, dtype=torch.uint8)
    clip[..., 0] = 255  # a fully bright channel must stay the brightest value (the seed's bug inverted it)
    clip[..., 1] = 0
    mean, std = [0.5, 0.25, 0.1], [0.5, 2.0, 0.3]
    out = transform(clip, frames=4, size=4, mean=mean, std=std, layout="tchw")
    manual = clip[[1, 3, 6, 8]].double().permute(0, 3, 1, 2) / 255.0          # (T, C, H, W) in 0..1
    manual = (manual - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64).view(1, 3, 1, 1)
    assert out.shape == (4, 3, 4, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), manual, atol=1e-6, rtol=1e-6)
    assert torch.allclose(out[:, 0], torch.tensor((1.0 - 0.5) / 0.5))   # 255 -> 1.0, not inverted
    assert torch.allclose(out[:, 1], torch.tensor((0.0 - 0.25) / 2.0))
    cthw = transform(clip, frames=4, size=4, mean=mean, std=std, layout="cthw")
    assert cthw.shape == (3, 4, 4, 4)
    torch.testing.assert_close(cthw, out.permute(1, 0, 2, 3))


def test_resize_is_antialiased_bilinear_and_keeps_flat_channels_flat():
    clip = torch.zeros(3, 40, 60, 2, dtype=torch.uint8)
    clip[..., 0] = 200
    clip[:, :, 1::2, 1] = 255  # one-pixel stripes: antialiasing averages them to about half
    x = pick_and_resize(clip, frames=3, size=8)
    assert x.shape == (3, 2, 8, 8)
    torch.testing.assert_close(x[:, 0], torch.full((3, 8, 8), 200 / 255))
    assert (x[:, 1] - 0.5).abs().max() < 0.1  # without antialiasing bilinear samples would alias to 0 or 1


def test_bare_uint8_tensor_is_accepted_with_generic_channel_names(tmp_path):
    p = tmp_path / "bare.pt"
    torch.save(torch.zeros(5, 8, 8, 3, dtype=torch.uint8), p)
    clip, meta = load_record(p)
    assert clip.shape == (5, 8, 8, 3) and meta["channels"] == ["c0", "c1", "c2"]
    info = inspect_files([p])
    assert info["channels"] == ["c0", "c1", "c2"] and info["pt_frames"] == 5 and info["audiomethod"] is None


def test_dataset_items_in_each_layout(tmp_path):
    paths = write_dataset(tmp_path, per_class=1, T=6, H=20, W=24)
    for layout, shape in (("cthw", (5, 4, 12, 12)), ("tchw", (4, 5, 12, 12))):
        ds = FMRGBDataset(paths, [0, 1], frames=4, size=12, mean=[0.5] * 5, std=[0.2] * 5, layout=layout)
        x, y = ds[1]
        assert x.shape == shape and x.dtype == torch.float32 and y == 1


# ----------------------------------------------------------------------------- statistics

def test_stats_are_one_value_per_channel_and_match_float64_computation(tmp_path):
    paths = write_dataset(tmp_path, per_class=2, T=5, H=10, W=10, C=5)
    mean, std = compute_stats(paths, frames=3, size=6)
    assert len(mean) == 5 and len(std) == 5
    # (N, C, S, S) in float64 from the uint8 small frames (pick_and_resize's float32 would round them)
    xs = torch.cat([small_frames(load_record(p)[0], frames=3, size=6).double() / 255 for p in paths])
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), xs.mean(dim=(0, 2, 3)), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), xs.std(dim=(0, 2, 3), unbiased=False),
                               atol=1e-9, rtol=1e-7)


def test_a_constant_channel_gets_std_one_instead_of_division_by_zero(tmp_path):
    p = tmp_path / "flat.pt"
    x = torch.full((4, 8, 8, 3), 100, dtype=torch.uint8)
    x[..., 0] = torch.randint(0, 256, (4, 8, 8), dtype=torch.uint8)
    torch.save(pt_dict(x), p)
    mean, std = compute_stats([p], frames=4, size=8)
    assert std[1] == 1.0 and std[2] == 1.0 and 0 < std[0] < 1
    assert mean[1] == pytest.approx(100 / 255)


# ----------------------------------------------------------------------------- the split

def test_split_is_stratified_disjoint_complete_and_seeded():
    labels = ["a"] * 30 + ["b"] * 15 + ["c"] * 15
    train, val, test = split_indices(labels, test_size=0.2, val_size=0.2, seed=3)
    assert sorted(train + val + test) == list(range(60))
    for part, n in ((train, 36), (val, 12), (test, 12)):
        assert len(part) == n
        counts = {k: sum(labels[i] == k for i in part) for k in "abc"}
        assert counts["a"] == 2 * counts["b"] == 2 * counts["c"], counts  # class ratio 2:1:1 kept in each part
    assert split_indices(labels, test_size=0.2, val_size=0.2, seed=3) == (train, val, test)
    assert split_indices(labels, test_size=0.2, val_size=0.2, seed=4) != (train, val, test)


# ----------------------------------------------------------------------------- clear errors

def test_fewer_than_two_classes_is_an_error():
    with pytest.raises(ValueError, match="at least two classes"):
        split_indices(["a"] * 10, test_size=0.2, val_size=0.2, seed=0)


def test_a_class_too_small_for_the_split_names_the_counts():
    with pytest.raises(ValueError, match=r"too small.*a=10, b=2"):
        split_indices(["a"] * 10 + ["b"] * 2, test_size=0.2, val_size=0.2, seed=0)


def test_mixed_channel_counts_name_one_file_of_each(tmp_path):
    p5 = tmp_path / "five.pt"
    p3 = tmp_path / "three.pt"
    torch.save(pt_dict(torch.zeros(4, 8, 8, 5, dtype=torch.uint8)), p5)
    torch.save(pt_dict(torch.zeros(4, 8, 8, 3, dtype=torch.uint8)), p3)
    with pytest.raises(ValueError, match="mixed channel counts") as e:
        inspect_files([p5, p3])
    assert "five.pt" in str(e.value) and "three.pt" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("content,says", [(b"not a torch file", "weights_only"),
                                           ("cut", "truncated or not a torch file"),
                                           (None, "expected uint8 frames")])
def test_an_unreadable_file_is_named(tmp_path, content, says):
    p = tmp_path / "broken.pt"
    if content is None:
        torch.save({"frames": torch.zeros(3, 4, 4, 3)}, p)  # float frames: not FMRGB
    elif content == "cut":  # a copy that stopped half-way
        torch.save(pt_dict(torch.zeros(4, 8, 8, 5, dtype=torch.uint8)), p)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    else:
        p.write_bytes(content)
    with pytest.raises(RuntimeError, match="broken.pt: unreadable") as e:
        inspect_files([p])
    assert "\n" not in str(e.value) and says in str(e.value)


def test_a_symlinked_class_folder_is_named_when_listing_the_data(tmp_path, capsys):
    write_dataset(tmp_path / "data", per_class=3)
    write_dataset(tmp_path / "elsewhere", per_class=3, classes=("extra",))
    (tmp_path / "data" / "extra").symlink_to(tmp_path / "elsewhere" / "extra")
    paths, labels = find_data(tmp_path / "data")
    assert set(labels) == {"calm", "loud"}  # a link is never followed: it may lead out of the data
    assert f"warning: {tmp_path / 'data' / 'extra'}" in capsys.readouterr().err
