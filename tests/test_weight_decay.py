"""Weight decay as fine-tuning practice has it: AdamW decays the filters of convolutions and linear layers, not
the parameters of normalisation layers nor any bias (--decay_norm_bias true decays them too), and a checkpoint
made before that rule (one optimizer group per learning rate, everything decayed) resumes as it was made."""
import pytest
import torch

import train
from conftest import load_pt, write_dataset
from fmrgb.training.engine import no_decay_names, param_groups
from fmrgb.training.sampling import seed_everything
from model import MODELS, build_model

FAST = ["--frames", "8", "--size", "16", "--num_workers", "0", "--batch_size", "8", "--device", "cpu",
        "--test_size", "0.25", "--patience", "10", "--learnmethod", "conv3d", "--epochs", "1"]
KW = dict(in_channels=5, num_classes=2, frames=8, size=16)


def parse(*argv):
    return train.get_args_parser().parse_args(list(map(str, argv)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_dataset(root, per_class=8, T=8, H=16, W=16)  # 8 training files: one step of 8
    return root


@pytest.mark.parametrize("decay_norm_bias", ["false", "true"])
def test_one_step_at_a_huge_decay_leaves_only_norms_and_biases(tiny, tmp_path, decay_norm_bias):
    """AdamW first shrinks a decayed weight by lr x weight_decay (here 1e-2 x 100: to 0), then moves it by at
    most lr: after the one step a decayed parameter is within 1e-2 of 0, a kept one within 1e-2 of its start."""
    assert train.main(parse("--data", tiny, "--out", tmp_path, *FAST, "--lr", "1e-2", "--weight_decay", "100",
                            "--decay_norm_bias", decay_norm_bias)) == 0
    state = load_pt(tmp_path / "last.pt")["model_state"]
    seed_everything(0)  # train.py's start: the same initial weights
    start = build_model("conv3d", **KW)
    kept = set() if decay_norm_bias == "true" else no_decay_names(start)
    assert kept == set() or kept == {"features.0.1.weight", "features.0.1.bias", "features.2.1.weight",
                                     "features.2.1.bias", "features.4.1.weight", "features.4.1.bias",
                                     "features.6.1.weight", "features.6.1.bias", "head.bias"}
    for name, p in start.named_parameters():
        after = state[name]
        if name in kept:
            assert (after - p.detach()).abs().max() <= 1.0001e-2, name
        else:
            assert after.abs().max() <= 1.0001e-2, name
    assert start.features[0][1].weight.detach().abs().min() == 1  # BatchNorm scales start at 1: kept, not 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_keeps_its_norms_and_biases_out_of_the_decay(name):
    model = build_model(name, **KW)
    groups = param_groups(model, {"head.weight": 0.1}, no_decay_names(model))
    off = {id(p) for g in groups if g.get("weight_decay") == 0.0 for p in g["params"]}
    for pname, p in model.named_parameters():
        norm_or_bias = pname.endswith("bias") or p.dim() == 1 and "norm" in type(
            model.get_submodule(pname.rsplit(".", 1)[0])).__name__.lower()
        if p.dim() > 1:  # filters, embeddings, positions: decayed
            assert id(p) not in off, pname
        elif norm_or_bias:
            assert id(p) in off, pname
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_a_checkpoint_made_before_the_rule_resumes_with_its_groups(tiny, tmp_path):
    """Such a checkpoint has one optimizer group per learning rate and no decay_norm_bias flag: its run goes on
    so (the optimizer's saved state fits no other grouping) and says so."""
    out = tmp_path / "old"
    assert train.main(parse("--data", tiny, "--out", out, *FAST, "--decay_norm_bias", "true")) == 0
    for name in ("last.pt", "best.pt"):  # as the version before the flag wrote them
        d = load_pt(out / name)
        del d["train_args"]["decay_norm_bias"]
        torch.save(d, out / name)
    assert len(load_pt(out / "last.pt")["optimizer_state"]["param_groups"]) == 1
    assert train.main(parse("--data", tiny, "--resume", out / "last.pt", *FAST[:-2], "--epochs", "2")) == 0
    ckpt = load_pt(out / "last.pt")
    assert [g["weight_decay"] for g in ckpt["optimizer_state"]["param_groups"]] == [0.01]
    assert ckpt["train_args"]["decay_norm_bias"] is True and len(ckpt["history"]) == 2
