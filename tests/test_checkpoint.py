"""The checkpoint file (fmrgb/training/checkpoint.py): files written by earlier versions load into the typed values, which
write the same layout back; what --resume reads beside it; train.py's settings keep the parser's flags."""
import dataclasses

import pytest
import torch

import predict
import train
from conftest import CHANNELS5, write_dataset
from fmrgb.training import checkpoint
from fmrgb.training.settings import TrainSettings, load_resume
from model import build_model

SPLIT = {"train": ["calm/calm_00.pt", "loud/loud_00.pt"], "val": ["calm/calm_01.pt"], "test": ["loud/loud_01.pt"]}


def todays_checkpoint(model):
    """A last.pt as train.py wrote it before the checkpoint was typed (the version of issue 18), literally."""
    return {
        "format_version": 1, "model": "conv3d",
        "model_kwargs": {"in_channels": 5, "num_classes": 2, "frames": 4, "size": 16},
        "layout": "cthw", "classes": ["calm", "loud"], "channels": list(CHANNELS5), "use_channels": None,
        "mean": [0.5, 0.5, 0.5, 0.4, 0.3], "std": [0.25, 0.25, 0.25, 0.2, 0.1], "frames": 4, "size": 16,
        "audiomethod": "simple", "frequency_param": 100, "sample_rate": 44100, "pt_frames": 8, "lr": 0.003,
        "train_args": {"data": "data", "epochs": 3, "lr": 0.003, "seed": 0, "batch_size": 4, "channels": None,
                       "positive_class": "loud", "pretrained_lr_factor": 0.1, "split": SPLIT,
                       "fresh_parameters": None},
        "model_state": model.state_dict(),
        "epoch": 2,
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.003, "weight_decay": 0.01, "lr_factor": 1.0,
                                                           "params": list(range(len(list(model.parameters()))))}]},
        "history": [{"epoch": 1, "train_loss": 0.7, "train_acc": 0.5, "val_loss": 0.69, "val_acc": 0.5, "lr": 0.003,
                     "steps": 1, "seconds": 0.1, "data_s": 0.0},
                    {"epoch": 2, "train_loss": 0.6, "train_acc": 0.75, "val_loss": 0.71, "val_acc": 0.5, "lr": 0.003,
                     "steps": 1, "seconds": 0.1, "data_s": 0.0}],
        "best_val_loss": 0.69, "best_epoch": 1, "bad_epochs": 1, "patience": 5,
        "rng_state": [{"torch": torch.get_rng_state()}],
    }


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("conv3d", in_channels=5, num_classes=2, frames=4, size=16).eval()


def test_a_checkpoint_of_the_earlier_layout_loads_typed_and_writes_that_layout_back(tmp_path, model):
    stored = todays_checkpoint(model)
    torch.save(stored, tmp_path / "last.pt")
    ckpt = checkpoint.load(tmp_path / "last.pt")
    r = ckpt.recipe
    assert (r.learnmethod, r.layout, r.classes, r.frames, r.size, r.lr) == ("conv3d", "cthw", ("calm", "loud"), 4, 16,
                                                                          0.003)
    assert r.record == checkpoint.RecordSettings(tuple(CHANNELS5), "simple", 100, 44100, 8)
    assert r.use_channels is None and r.mean == (0.5, 0.5, 0.5, 0.4, 0.3) and r.model_kwargs["in_channels"] == 5
    assert r.run.split == SPLIT and r.run.fresh_parameters is None and r.run.flag("batch_size") == 4
    p = ckpt.progress
    assert (p.epoch, p.best_epoch, p.bad_epochs, p.best_val_loss, p.patience) == (2, 1, 1, 0.69, 5)
    assert [h["epoch"] for h in p.history] == [1, 2] and len(p.rng_state) == 1
    rebuilt = checkpoint.model_from(ckpt)
    for k, v in rebuilt.state_dict().items():
        torch.testing.assert_close(v, stored["model_state"][k], rtol=0, atol=0, msg=k)
    # saved again: the same keys in the same order, the same values
    checkpoint.save(tmp_path / "again.pt", ckpt)
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert list(again) == list(stored) and list(again["train_args"]) == list(stored["train_args"])
    for key in stored:
        if key not in ("model_state", "rng_state"):
            assert again[key] == stored[key], key
    torch.testing.assert_close(again["rng_state"][0]["torch"], stored["rng_state"][0]["torch"], rtol=0, atol=0)


def test_an_older_checkpoint_without_the_later_keys_loads_with_defaults(tmp_path, model):
    stored = todays_checkpoint(model)
    for key in ("format_version", "layout", "use_channels", "sample_rate", "pt_frames", "train_args",
                "optimizer_state", "history", "best_val_loss", "best_epoch", "bad_epochs", "patience", "rng_state"):
        del stored[key]
    torch.save(stored, tmp_path / "best.pt")
    ckpt = checkpoint.load(tmp_path / "best.pt")
    assert ckpt.progress is None and ckpt.recipe.layout == "cthw" and ckpt.recipe.use_channels is None
    assert ckpt.recipe.run == checkpoint.RunArgs() and ckpt.recipe.record.pt_frames is None
    torch.save({"model_state": {}}, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="bare.pt: not a train.py checkpoint"):
        checkpoint.load(tmp_path / "bare.pt")


def test_predict_and_resume_read_a_checkpoint_of_the_earlier_layout(tmp_path, model):
    paths = write_dataset(tmp_path / "data", per_class=2, T=8, H=16, W=16)
    stored = todays_checkpoint(model)
    (tmp_path / "run").mkdir()
    torch.save(stored, tmp_path / "run" / "last.pt")
    recipe, results = predict.predict_files(tmp_path / "run" / "last.pt", paths, log=lambda *a, **k: None)
    assert recipe.classes == ("calm", "loud") and all(err is None and probs.shape == (2,) for _, probs, err in results)
    resume = load_resume(tmp_path / "run" / "last.pt")  # no split.json, no best.pt beside it
    assert resume.split == SPLIT and resume.best_state is None and resume.checkpoint.progress.epoch == 2
    stored["model_state"] = {k: v + 1 for k, v in stored["model_state"].items()}
    torch.save(stored, tmp_path / "run" / "best.pt")
    best = load_resume(tmp_path / "run" / "last.pt").best_state
    torch.testing.assert_close(best["head.bias"], model.state_dict()["head.bias"] + 1)
    del stored["train_args"]["split"]
    torch.save(stored, tmp_path / "run" / "last.pt")
    with pytest.raises(ValueError, match="its run saved no split"):
        load_resume(tmp_path / "run" / "last.pt")


def test_train_settings_keep_every_flag_in_the_parsers_order():
    args = train.get_args_parser().parse_args(["--data", "x"])
    assert [f.name for f in dataclasses.fields(TrainSettings)] == list(vars(args))
