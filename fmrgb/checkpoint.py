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


# the flags a resumed run takes from its checkpoint, not the command line: they define its split and recipe
RESUMED_FLAGS = ("learnmethod", "frames", "size", "lr", "seed", "test_size", "val_size", "batch_size", "weight_decay",
                 "usescheduler", "patience", "channels")


def _shown(value):
    """A flag's value as typed: 0.001, true, red,green,blue; None (all channels) as "all"."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return "all" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def resumed_settings(args, ckpt, defaults=None):
    """(settings, note): a copy of the argparse namespace `args` with RESUMED_FLAGS (and, unless given,
    --positive_class) from the checkpoint `ckpt`, and one line naming each flag taken once, and the
    command line's values not used (those other than the parser's `defaults`, a namespace)."""
    import argparse

    saved = {**ckpt.get("train_args", {}), "learnmethod": ckpt["model"], "frames": ckpt["frames"],
             "size": ckpt["size"], "lr": ckpt["lr"], "channels": ckpt.get("use_channels")}
    settings = argparse.Namespace(**vars(args))
    taken, differing = [], []
    for flag in RESUMED_FLAGS:
        if flag not in saved:  # a checkpoint of an older version: the command line's value
            continue
        given = getattr(args, flag, None)
        taken.append(f"--{flag} {_shown(saved[flag])}")
        if given is not None and given != saved[flag] and given != getattr(defaults, flag, None):
            differing.append(f"--{flag} {_shown(given)}")
        setattr(settings, flag, saved[flag])
    if getattr(args, "positive_class", None) is None:
        settings.positive_class = saved.get("positive_class")
    note = "note: --resume takes from the checkpoint " + ", ".join(taken)
    return settings, note + (f" (not this command line's {', '.join(differing)})" if differing else "")


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


def load_state_dict_file(path):
    """The weights in `path` (name -> tensor): a bare state dict such as torchvision's published files, or a
    train.py checkpoint's "model_state"."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model_state" in state:
        state = state["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict (parameter name -> tensor)")
    return clean_state_dict(state)


# torchvision's published Kinetics-400 weights of the backbones (the file name ends in its SHA-256's start)
PRETRAINED_URLS = {name: f"https://download.pytorch.org/models/{name}-{digest}.pth" for name, digest in
                   (("r3d_18", "b3b3357e"), ("mc3_18", "a90a0ba3"), ("r2plus1d_18", "91a641e6"))}


def download_pretrained(name):
    """The published Kinetics-400 state dict of backbone `name`, through torch's cache (downloaded once,
    hash-checked); RuntimeError, with the address, when it cannot be downloaded (no network)."""
    url = PRETRAINED_URLS[name]
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, weights_only=True)
    except OSError as e:  # urllib's URLError, a refused connection, a full disk
        raise RuntimeError(f"cannot download {url}: {getattr(e, 'reason', None) or e}") from e


def model_from_checkpoint(ckpt):
    model = build_model(ckpt["model"], **ckpt["model_kwargs"])
    model.load_state_dict(clean_state_dict(ckpt["model_state"]))
    return model


def checkpoint_base(*, learnmethod, model_kwargs, classes, info, mean, std, frames, size, lr, train_args,
                    use_channels=None):
    """The fields every checkpoint of a run shares (what predict.py needs to rebuild the recipe).
    `info` is dataset.inspect_files' summary of the files, with "pt_frames" of the training files;
    "channels" are the files' channels, "use_channels" the names the model takes (None: all of them)."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "model": learnmethod,
        "model_kwargs": dict(model_kwargs),
        "layout": INPUT_LAYOUT[learnmethod],
        "classes": list(classes),
        "channels": list(info["channels"]),
        "use_channels": None if use_channels is None else list(use_channels),
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
