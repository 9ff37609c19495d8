"""train.py tests the best epoch's weights, not the last: metrics.json and test_predictions.csv describe best.pt."""
import json

import numpy as np
import torch

import train
from conftest import read_csv, write_dataset
from dataset import FMRGBDataset
from fmrgb.training import checkpoint


def probabilities(ckpt_path, paths):
    """Class probabilities of a checkpoint's model on the records at `paths`."""
    ckpt = checkpoint.load(ckpt_path)
    r = ckpt.recipe
    ds = FMRGBDataset(paths, [0] * len(paths), frames=r.frames, size=r.size, mean=list(r.mean), std=list(r.std),
                      layout=r.layout)
    with torch.no_grad():
        logits = checkpoint.model_from(ckpt).eval()(torch.stack([ds[i][0] for i in range(len(ds))]))
    return torch.softmax(logits.double(), 1).numpy()


def test_an_early_stopped_run_reports_its_best_epoch_not_its_last(tmp_path):
    # two classes alike (noise): at lr 3e-3: the validation loss is lowest at epoch 1, the weights move on
    write_dataset(tmp_path / "data", per_class=12, T=8, H=16, W=16, level=[100, 100])
    args = train.get_args_parser().parse_args([
        "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--frames", "8", "--size", "16",
        "--num_workers", "0", "--batch_size", "8", "--device", "cpu", "--epochs", "8", "--patience", "2",
        "--learnmethod", "conv3d", "--lr", "3e-3"])
    assert train.main(args) == 0
    run = tmp_path / "run"
    m = json.loads((run / "metrics.json").read_text())
    assert m["best_epoch"] < m["epochs_run"]  # the premise: an early-stopped run whose best epoch is not its last
    rows = read_csv(run / "test_predictions.csv")
    paths = [r["path"] for r in rows]
    written = np.array([[float(r["p_calm"]), float(r["p_loud"])] for r in rows])
    best, last = probabilities(run / "best.pt", paths), probabilities(run / "last.pt", paths)
    assert np.abs(best - last).max() > 1e-3  # the last epoch's weights would give other probabilities
    np.testing.assert_allclose(written, best, atol=1e-5, rtol=0)
    accuracy = np.mean([r["true"] == r["predicted"] for r in rows])
    assert m["accuracy"] == accuracy
