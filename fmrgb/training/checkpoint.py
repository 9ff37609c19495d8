"""The checkpoint file: what train.py saves (best.pt, last.pt) and predict.py loads. This module alone
knows its format; everyone else reads and builds the typed values below.

    recipe = Recipe.of(learnmethod="conv3d", model_kwargs=kw, classes=..., record=RecordSettings.of(info),
                       mean=..., std=..., frames=32, size=64, lr=1e-3, run=RunArgs(flags, split))
    save("run/last.pt", Checkpoint(recipe, model.state_dict(), Progress(epoch=3, ...)))
    ckpt = load("run/best.pt")                          # -> Checkpoint
    model = model_from(ckpt); ckpt.recipe.classes

On disk a checkpoint is a dict of plain values and tensors (so torch.load(weights_only=True) reads it), its
keys in this order: the recipe to rebuild the model and its input, the weights ("model_state", without DDP /
torch.compile prefixes) and, in a training run's files, the Progress a --resume continues from. A file of an
older version lacks some keys: they read as the defaults below.
"""
import dataclasses
from typing import Any, Mapping

import torch

from fmrgb.files import atomic_output
from model import INPUT_LAYOUT, build_model

CHECKPOINT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RecordSettings:
    """How the training files were made: predict.py converts a video the same way and refuses a .pt made otherwise."""
    channels: tuple            # the files' channel names, in order
    audiomethod: Any = None
    frequency_param: Any = None
    sample_rate: Any = None
    pt_frames: Any = None      # the training files' frame count (a video is converted to as many)

    @classmethod
    def of(cls, info):
        """From fmrgb.training.survey.inspect_files' summary of the training files (with their "pt_frames")."""
        return cls(tuple(info["channels"]), info["audiomethod"], info["frequency_param"], info["sample_rate"],
                   info["pt_frames"])


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """The run's settings as train.py used them (stored as "train_args"): every flag by name, the split
    (file names per part), the parameters new at --lr when it started from other weights and the class
    weights of its loss."""
    flags: Mapping = dataclasses.field(default_factory=dict)
    split: Any = None                # {"train", "val", "test"}: file names; None in a file of an older version
    fresh_parameters: Any = None     # sorted names, or None (no starting weights)
    class_weights: Any = None        # the loss weight per class (--class_weight balanced), None: none

    def flag(self, name, default=None):
        return self.flags.get(name, default)

    def to_dict(self):
        weights = {} if self.class_weights is None else {"class_weights": list(self.class_weights)}  # as before
        return {**self.flags, "split": self.split, "fresh_parameters": self.fresh_parameters, **weights}

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        weights = d.get("class_weights")
        return cls({k: v for k, v in d.items() if k not in ("split", "fresh_parameters", "class_weights")},
                   d.get("split"), d.get("fresh_parameters"), None if weights is None else tuple(weights))


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What rebuilds a trained model and the input it takes."""
    learnmethod: str
    model_kwargs: Mapping      # build_model's: in_channels, num_classes, frames, size
    layout: str                # model.INPUT_LAYOUT's
    classes: tuple
    record: RecordSettings
    use_channels: Any          # the channel names the model takes (a tuple), None: all of the files'
    mean: tuple
    std: tuple
    frames: int
    size: int
    lr: float
    run: RunArgs

    @classmethod
    def of(cls, *, learnmethod, model_kwargs, classes, record, mean, std, frames, size, lr, run, use_channels=None):
        """A new run's recipe, its values as plain Python types."""
        return cls(learnmethod, dict(model_kwargs), INPUT_LAYOUT[learnmethod], tuple(classes), record,
                   None if use_channels is None else tuple(use_channels), tuple(float(m) for m in mean),
                   tuple(float(s) for s in std), int(frames), int(size), float(lr), run)

    def to_dict(self):
        r = self.record
        return {"format_version": CHECKPOINT_VERSION, "model": self.learnmethod,
                "model_kwargs": dict(self.model_kwargs), "layout": self.layout, "classes": list(self.classes),
                "channels": list(r.channels),
                "use_channels": None if self.use_channels is None else list(self.use_channels),
                "mean": list(self.mean), "std": list(self.std), "frames": self.frames, "size": self.size,
                "audiomethod": r.audiomethod, "frequency_param": r.frequency_param, "sample_rate": r.sample_rate,
                "pt_frames": r.pt_frames, "lr": self.lr, "train_args": self.run.to_dict()}

    @classmethod
    def from_dict(cls, d):
        record = RecordSettings(tuple(d["channels"]), d.get("audiomethod"), d.get("frequency_param"),
                                d.get("sample_rate"), d.get("pt_frames"))
        use = d.get("use_channels")
        return cls(d["model"], dict(d["model_kwargs"]), d.get("layout", INPUT_LAYOUT.get(d["model"])),
                   tuple(d["classes"]), record, None if use is None else tuple(use), tuple(d["mean"]),
                   tuple(d["std"]), d["frames"], d["size"], d["lr"], RunArgs.from_dict(d.get("train_args", {})))


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a training run stands after an epoch: what --resume continues from."""
    epoch: int
    optimizer_state: Mapping
    history: tuple = ()                  # one dict per epoch (engine.fit's rows)
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0                  # epochs since the best one
    patience: Any = None
    rng_state: tuple = ()                # every process's random-number states, by rank

    def to_dict(self):
        return {"epoch": self.epoch, "optimizer_state": self.optimizer_state,
                "history": [dict(h) for h in self.history], "best_val_loss": float(self.best_val_loss),
                "best_epoch": int(self.best_epoch), "bad_epochs": int(self.bad_epochs), "patience": self.patience,
                "rng_state": list(self.rng_state)}

    @classmethod
    def from_dict(cls, d):
        return cls(int(d["epoch"]), d["optimizer_state"], tuple(dict(h) for h in d.get("history", [])),
                   d.get("best_val_loss", float("inf")), d.get("best_epoch", 0), d.get("bad_epochs", 0),
                   d.get("patience"), tuple(d.get("rng_state") or ()))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    recipe: Recipe
    model_state: Mapping                 # parameter name -> tensor
    progress: Any = None                 # a Progress in a training run's files


@dataclasses.dataclass(frozen=True)
class Resume:
    """A run to continue: its last checkpoint, the weights of its best.pt (None without one) and its split."""
    checkpoint: Checkpoint
    best_state: Any
    split: Mapping


def clean_state_dict(state):
    """Weights without the "module." (DDP) / "_orig_mod." (torch.compile) prefixes, on the CPU."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v.detach().cpu().clone(memory_format=torch.contiguous_format)  # also undoes channels-last
    return out


def to_dict(ckpt):
    """The stored dict: the recipe's keys, "model_state", then the progress's."""
    progress = {} if ckpt.progress is None else ckpt.progress.to_dict()
    return {**ckpt.recipe.to_dict(), "model_state": ckpt.model_state, **progress}


def is_checkpoint(stored):
    return isinstance(stored, dict) and "model_state" in stored and "model" in stored


def from_dict(d):
    """The Checkpoint of a stored dict (of this version or an older one)."""
    progress = Progress.from_dict(d) if "optimizer_state" in d else None
    return Checkpoint(Recipe.from_dict(d), d["model_state"], progress)


def save(path, ckpt):
    with atomic_output(path) as tmp:
        torch.save(to_dict(ckpt), tmp)


def load(path):
    """The Checkpoint in `path` (plain types + tensors, so weights_only=True loads it)."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    if not is_checkpoint(stored):
        raise ValueError(f"{path}: not a train.py checkpoint")
    return from_dict(stored)


def read_weights(path):
    """(weights, Recipe or None) in `path`: a train.py checkpoint's "model_state" and the recipe it was trained
    with, or any other file's contents (a bare state dict such as torchvision's published files) and None."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    if is_checkpoint(stored):
        ckpt = from_dict(stored)
        return ckpt.model_state, ckpt.recipe
    return stored, None


def model_from(ckpt):
    model = build_model(ckpt.recipe.learnmethod, **ckpt.recipe.model_kwargs)
    model.load_state_dict(clean_state_dict(ckpt.model_state))
    return model
