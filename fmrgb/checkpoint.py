"""The checkpoint file: what train.py saves (best.pt, last.pt) and predict.py loads. This module
alone knows its format.

    base = checkpoint_base(learnmethod="conv3d", model_kwargs=kw, classes=..., info=..., mean=..., std=...,
                           frames=32, size=64, lr=1e-3, train_args={...})
    save_checkpoint("run/last.pt", {**base, "model_state": clean_state_dict(model.state_dict()), ...})
    model = model_from_checkpoint(load_checkpoint("run/best.pt"))

A checkpoint is a dict of plain values and tensors (so torch.load(weights_only=True) reads it): the
recipe to rebuild the model and its input (checkpoint_base), the weights ("model_state", without
DDP / torch.compile prefixes) and, in a training run's files, the optimizer state, epoch, history and
the early-stopping state needed to resume.
"""
import torch

from fmrgb.files import atomic_output
from model import INPUT_LAYOUT, build_model

CHECKPOINT_VERSION = 1


def clean_state_dict(state):
    """Weights without the "module." (DDP) / "_orig_mod." (torch.compile) prefixes, on the CPU."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v.detach().cpu().clone(memory_format=torch.contiguous_format)  # also undoes channels-last
    return out


def save_checkpoint(path, ckpt):
    with atomic_output(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path):
    """A checkpoint dict (plain types + tensors, so weights_only=True loads it)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: not a train.py checkpoint")
    return ckpt


def model_from_checkpoint(ckpt):
    model = build_model(ckpt["model"], **ckpt["model_kwargs"])
    model.load_state_dict(clean_state_dict(ckpt["model_state"]))
    return model


def checkpoint_base(*, learnmethod, model_kwargs, classes, info, mean, std, frames, size, lr, train_args):
    """The fields every checkpoint of a run shares (what predict.py needs to rebuild the recipe).
    `info` is dataset.inspect_files' summary of the files, with "pt_frames" of the training files."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "model": learnmethod,
        "model_kwargs": dict(model_kwargs),
        "layout": INPUT_LAYOUT[learnmethod],
        "classes": list(classes),
        "channels": list(info["channels"]),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "frames": int(frames),
        "size": int(size),
        "audiomethod": info["audiomethod"],
        "frequency_param": info["frequency_param"],
        "sample_rate": info["sample_rate"],
        "pt_frames": info["pt_frames"],
        "lr": float(lr),
        "train_args": dict(train_args),
    }
