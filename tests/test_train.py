"""train.py: learning on a tiny data set, outputs, checkpoints, resume, LR search, determinism, errors."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import train
from conftest import ROOT, load_pt, prepare, read_csv, run_script, write_dataset
from dataset import compute_stats
from fmrgb.training import checkpoint
from fmrgb.training.checkpoint import clean_state_dict
from fmrgb.cli import parse_bool
from fmrgb.training.engine import Execution, run_epoch
from fmrgb.report import compute_metrics
from model import INPUT_LAYOUT, build_model

FAST = ["--frames", "8", "--size", "16", "--num_workers", "0", "--batch_size", "8", "--device", "cpu"]


def run_main(data, out, *extra):
    """A training run that must succeed (exit status 0); usage errors raise SystemExit(2)."""
    args = train.get_args_parser().parse_args(["--data", str(data), "--out", str(out), *FAST, *extra])
    status = train.main(args)
    assert status == 0
    return status


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root, per_class=16, T=8, H=16, W=16)
    return root


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """One conv3d run shared by the output / checkpoint / predict tests (8 epochs: with 6, BatchNorm's
    running statistics still lag on some splits, and the test threshold with them)."""
    out = tmp_path_factory.mktemp("run")
    run_main(tiny, out, "--epochs", "8", "--test_size", "0.25", "--patience", "10", "--learnmethod", "conv3d",
             "--islearnrate_search", "false", "--lr", "3e-3")
    return out


def test_bool_flags_parse_robustly():
    for text, value in [("true", True), ("True", True), ("1", True), ("yes", True), ("false", False),
                        ("FALSE", False), ("0", False), ("no", False)]:
        assert parse_bool(text) is value
    p = train.get_args_parser()
    assert p.parse_args(["--data", "x", "--islearnrate_search", "yes"]).islearnrate_search is True
    assert p.parse_args(["--data", "x", "--amp"]).amp is True
    assert p.parse_args(["--data", "x", "--usescheduler", "0"]).usescheduler is False
    with pytest.raises(SystemExit):
        p.parse_args(["--data", "x", "--islearnrate_search", "maybe"])
    with pytest.raises(SystemExit):
        p.parse_args(["--data", "x", "--learnmethod", "resnet"])


def test_conv3d_learns_the_tiny_set_and_writes_every_output(trained):
    m = json.loads((trained / "metrics.json").read_text())
    assert m["accuracy"] >= 0.875, m
    for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "confusion_matrix",
                "classes", "n_train", "n_val", "n_test", "learnmethod", "lr", "best_epoch"):
        assert key in m
    assert m["classes"] == ["calm", "loud"] and m["learnmethod"] == "conv3d" and m["lr"] == 3e-3
    assert (m["n_train"], m["n_val"], m["n_test"]) == (16, 8, 8)
    assert sum(map(sum, m["confusion_matrix"])) == 8
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "confusion.png", "roc.png",
                 "test_predictions.csv", "split.json"):
        assert (trained / name).is_file(), name
    assert not list(trained.glob(".*.part"))  # atomic writes leave no temporary files
    hist = read_csv(trained / "history.csv")
    assert [int(h["epoch"]) for h in hist] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert float(hist[-1]["train_loss"]) < float(hist[0]["train_loss"])
    preds = read_csv(trained / "test_predictions.csv")
    assert len(preds) == 8 and set(preds[0]) == {"path", "true", "predicted", "p_calm", "p_loud"}
    acc = sum(r["true"] == r["predicted"] for r in preds) / len(preds)
    assert acc == pytest.approx(m["accuracy"])
    assert all(r["true"] == Path(r["path"]).parent.name for r in preds)


def test_checkpoint_round_trip_with_weights_only(trained, tiny):
    ckpt = load_pt(trained / "best.pt")
    for key in ("model", "model_kwargs", "model_state", "classes", "channels", "mean", "std", "frames", "size",
                "audiomethod", "frequency_param", "pt_frames", "optimizer_state", "epoch", "history", "layout"):
        assert key in ckpt, key
    assert ckpt["channels"] == ["red", "green", "blue", "amplitude", "frequency"]
    assert ckpt["pt_frames"] == 8 and ckpt["audiomethod"] == "simple" and ckpt["frequency_param"] == 100
    assert len(ckpt["mean"]) == len(ckpt["std"]) == 5
    m = json.loads((trained / "metrics.json").read_text())
    assert ckpt["epoch"] == m["best_epoch"]
    typed = checkpoint.load(trained / "best.pt")
    assert typed.progress.epoch == ckpt["epoch"] and list(typed.recipe.mean) == ckpt["mean"]
    model = checkpoint.model_from(typed).eval()
    # the rebuilt model reproduces the saved test probabilities
    from dataset import FMRGBDataset

    rows = read_csv(trained / "test_predictions.csv")
    ds = FMRGBDataset([r["path"] for r in rows], [0] * len(rows), frames=8, size=16, mean=ckpt["mean"],
                      std=ckpt["std"], layout=ckpt["layout"])
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack([ds[i][0] for i in range(len(ds))])).double(), 1)
    torch.testing.assert_close(probs[:, 1], torch.tensor([float(r["p_loud"]) for r in rows], dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_state_dict_prefixes_of_ddp_and_compile_are_stripped():
    model = build_model("conv3d", in_channels=3, num_classes=2, frames=4, size=16)
    wrapped = {"module._orig_mod." + k: v for k, v in model.state_dict().items()}
    clean = clean_state_dict(wrapped)
    assert set(clean) == set(model.state_dict())
    build_model("conv3d", in_channels=3, num_classes=2, frames=4, size=16).load_state_dict(clean)


def test_statistics_come_from_the_training_files_only(tmp_path):
    write_dataset(tmp_path, per_class=10, T=4, H=8, W=8, level=(0, 200))
    data = prepare(tmp_path, test_size=0.2, val_size=0.2, seed=0, frames=4, size=8)
    train_paths = [data.paths[i] for i in data.train]
    mean, std = compute_stats(train_paths, frames=4, size=8)
    assert data.mean == mean and data.std == std
    all_mean, _ = compute_stats(data.paths, frames=4, size=8)
    assert all_mean != mean
    assert not set(data.train) & (set(data.val) | set(data.test))


@pytest.mark.parametrize("name", ["conv3d", "convlstm", "vivit"])
def test_each_models_training_loss_falls(name, tmp_path):
    write_dataset(tmp_path, per_class=8, T=6, H=16, W=16)
    data = prepare(tmp_path, test_size=0.25, val_size=0.25, seed=0, frames=6, size=16)
    torch.manual_seed(0)
    ds = data.subset("train", frames=6, size=16, layout=INPUT_LAYOUT[name])
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    model = build_model(name, in_channels=5, num_classes=2, frames=6, size=16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.6 * losses[0], losses


def test_resume_continues_from_the_saved_epoch(tiny, tmp_path):
    common = ["--test_size", "0.25", "--patience", "10", "--learnmethod", "convlstm", "--islearnrate_search",
              "false", "--frames", "4", "--usescheduler", "true"]
    run_main(tiny, tmp_path, "--epochs", "2", *common)
    assert load_pt(tmp_path / "last.pt")["epoch"] == 2
    args = train.get_args_parser().parse_args(["--data", str(tiny), "--resume", str(tmp_path / "last.pt"),
                                               "--epochs", "3", *FAST, *common])
    assert train.main(args) == 0  # no --out: continues in the checkpoint's folder
    last = load_pt(tmp_path / "last.pt")
    assert last["epoch"] == 3
    hist = read_csv(tmp_path / "history.csv")
    assert [int(h["epoch"]) for h in hist] == [1, 2, 3]
    assert [h["epoch"] for h in last["history"]] == [1, 2, 3]
    lrs = [float(h["lr"]) for h in hist]
    assert lrs[0] == 1e-3 and lrs[0] > lrs[1] > lrs[2] > 0  # the cosine schedule continues, not restarts


def test_early_stopping_watches_the_validation_loss(tiny, tmp_path):
    # lr 0 and no batch norm: the validation loss never improves after epoch 1
    run_main(tiny, tmp_path, "--epochs", "6", "--test_size", "0.25", "--patience", "2", "--learnmethod", "vivit",
             "--lr", "0")
    hist = read_csv(tmp_path / "history.csv")
    assert [int(h["epoch"]) for h in hist] == [1, 2, 3]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["best_epoch"] == 1 and m["epochs_run"] == 3


def test_lr_search_keeps_the_lowest_validation_loss(tiny, tmp_path):
    run_main(tiny, tmp_path, "--epochs", "2", "--test_size", "0.25", "--patience", "5", "--learnmethod", "vivit",
             "--islearnrate_search", "true", "--lr_grid", "1e-6", "3e-3")
    rows = read_csv(tmp_path / "lr_search.csv")
    assert [float(r["lr"]) for r in rows] == [1e-6, 3e-3]
    best = min(rows, key=lambda r: float(r["best_val_loss"]))
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["lr"] == float(best["lr"])
    assert m["best_val_loss"] == pytest.approx(float(best["best_val_loss"]))
    ckpt = load_pt(tmp_path / "best.pt")
    assert ckpt["lr"] == float(best["lr"]) and ckpt["best_val_loss"] == pytest.approx(m["best_val_loss"])


def test_same_seed_gives_identical_metrics(tiny, tmp_path):
    common = ["--epochs", "2", "--test_size", "0.25", "--patience", "5", "--learnmethod", "conv3d",
              "--islearnrate_search", "false", "--seed", "7"]
    run_main(tiny, tmp_path / "a", *common)
    run_main(tiny, tmp_path / "b", *common)
    assert (tmp_path / "a/metrics.json").read_text() == (tmp_path / "b/metrics.json").read_text()
    assert "seconds" not in (tmp_path / "a/metrics.json").read_text()


def test_a_nan_loss_stops_with_a_clear_message():
    class NaNModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.full((x.shape[0], 2), float("nan")) * self.w

    loader = [(torch.zeros(2, 3), torch.tensor([0, 1]))]
    with pytest.raises(FloatingPointError, match="lower --lr"):
        run_epoch(NaNModel(), loader, Execution(torch.device("cpu")),
                  optimizer=torch.optim.SGD(NaNModel().parameters(), lr=0.1), desc="epoch 1/1")


@pytest.mark.parametrize("error, status, message", [
    (FloatingPointError("epoch 1/1: the loss became nan; try a lower --lr"), 1, "error: training stopped: "),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_main_returns_1_for_a_nan_loss_and_130_for_ctrl_c(tiny, tmp_path, monkeypatch, capsys, error, status,
                                                          message):
    def fail(*a, **k):
        raise error

    monkeypatch.setattr(train, "fit", fail)
    args = train.get_args_parser().parse_args(["--data", str(tiny), "--out", str(tmp_path), *FAST])
    assert train.main(args) == status
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)


def test_compute_metrics_binary_multiclass_and_single_class():
    import numpy as np

    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = compute_metrics([0, 1, 1, 1], probs, ["a", "b"])
    assert m["accuracy"] == 0.75 and m["recall"] == pytest.approx(2 / 3) and m["precision"] == 1.0
    assert m["roc_auc"] == 1.0 and m["confusion_matrix"] == [[1, 0], [1, 2]]
    assert compute_metrics([1, 1, 1, 1], probs, ["a", "b"])["roc_auc"] is None
    p3 = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    m3 = compute_metrics([0, 1, 2, 1], p3, ["a", "b", "c"])
    assert m3["average"] == "macro" and m3["accuracy"] == 0.75 and m3["roc_auc"] is not None


def test_three_classes_train(tmp_path):
    write_dataset(tmp_path / "d", per_class=6, T=4, H=16, W=16, classes=("a", "b", "c"))
    run_main(tmp_path / "d", tmp_path / "out", "--epochs", "1", "--test_size", "0.34", "--val_size", "0.17",
             "--learnmethod", "conv3d", "--frames", "4")
    m = json.loads((tmp_path / "out/metrics.json").read_text())
    assert m["classes"] == ["a", "b", "c"] and len(m["confusion_matrix"]) == 3
    assert not (tmp_path / "out/roc.png").exists()


# ----------------------------------------------------------------------------- command-line errors

def test_missing_data_path_is_one_line_and_exit_2(tmp_path):
    r = run_script("train.py", "--data", tmp_path / "nowhere", "--epochs", "1", "--device", "cpu", cwd=ROOT,
                   timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nowhere" in r.stderr and "no such file" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_gpu_exits_2(tiny, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(tiny, "unused", "--device", "cuda")
    assert e.value.code == 2 and "cuda" in capsys.readouterr().err


def test_data_problems_exit_2_with_the_reason(tmp_path, capsys):
    write_dataset(tmp_path / "one", per_class=6, classes=("only",))
    with pytest.raises(SystemExit) as e:
        run_main(tmp_path / "one", tmp_path / "o1")
    assert e.value.code == 2 and "at least two classes" in capsys.readouterr().err
    write_dataset(tmp_path / "small", per_class=10, classes=("big",))
    write_dataset(tmp_path / "small", per_class=2, classes=("tiny",), seed=1)
    with pytest.raises(SystemExit) as e:
        run_main(tmp_path / "small", tmp_path / "o2")
    assert e.value.code == 2 and "big=10, tiny=2" in capsys.readouterr().err
    (tmp_path / "small/tiny/broken.pt").write_bytes(b"junk")
    write_dataset(tmp_path / "small", per_class=3, classes=("tiny",), seed=2)
    with pytest.raises(SystemExit) as e:
        run_main(tmp_path / "small", tmp_path / "o3")
    assert e.value.code == 2 and "broken.pt: unreadable" in capsys.readouterr().err
