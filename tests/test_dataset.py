"""dataset.py: the Dataset's items in each layout and the training files' channel statistics."""
import pytest
import torch

from conftest import pt_dict, write_dataset
from dataset import FMRGBDataset, compute_stats
from fmrgb.training.clip import small_frames
from fmrgb.prepare.record import load_record


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
    # (N, C, S, S) in float64 from the uint8 small frames (as float32 they would be rounded)
    xs = torch.cat([small_frames(frames, frames=3, size=6, names=meta["channels"]).double() / 255
                    for frames, meta in map(load_record, paths)])
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
