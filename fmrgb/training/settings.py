"""The settings of a training run: which flags work together, what a resumed run continues from, and the
settings the run then uses (the command line's, a resumed run's recipe, the model's usual input). Each
function raises ValueError with one line; train.py exits 2.

    val_size = check_settings(args)            # args: train.py's argparse namespace
    resume = load_resume("runs/x/last.pt")     # -> checkpoint.Resume
    s, note = settle(args, val_size=val_size, resume=resume, defaults=parser.parse_args(["--data", "x"]))
"""
import dataclasses
import math
from pathlib import Path
from typing import Any

from fmrgb.training import checkpoint
from fmrgb.cli import error_summary
from fmrgb.training.distributed import resolve_device
from fmrgb.training.pretrained import input_defaults
from fmrgb.training.sampling import default_workers
from fmrgb.training.splits import SplitError, read_split
from model import BACKBONES, settings_problem

# the flags a resumed run takes from its checkpoint, not the command line: they define its split and recipe
RESUMED_FLAGS = ("learnmethod", "frames", "size", "lr", "seed", "test_size", "val_size", "batch_size", "weight_decay",
                 "decay_norm_bias", "usescheduler", "patience", "channels", "class_weight")
# what a checkpoint made before a flag existed did: its run is continued so (its optimizer groups must match)
BEFORE_THE_FLAG = {"decay_norm_bias": True}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """train.py's flags as the run uses them, in the parser's order (a checkpoint's "train_args" keeps them
    so): val_size resolved, a resumed run's recipe, frames, size and num_workers filled in."""
    data: str
    epochs: int
    test_size: float
    val_size: float
    patience: int
    learnmethod: str
    islearnrate_search: bool
    lr: float
    lr_grid: list
    weight_decay: float
    decay_norm_bias: bool  # weight decay on normalisation layers and biases too
    batch_size: int
    frames: int
    size: int
    pretrained: bool
    weights: Any
    pretrained_lr_factor: float
    augment: bool
    seed: int
    device: str
    num_workers: int
    cache: Any
    amp: bool
    usescheduler: bool
    out: Any
    resume: Any
    compile: bool
    channels: Any          # the channel names the model takes, None: all
    positive_class: Any
    class_weight: str      # "none" or "balanced" (weights from the training part)
    split: Any             # a split.json used as it is, None: the data's own split or a random one
    folds: Any
    repeats: int
    ablation: bool

    def flags(self):
        """{flag: value}, in the parser's order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def check_settings(args):
    """The validation fraction (--val_size, or --test_size's); ValueError naming the first flag (or pair of
    flags) that cannot work."""
    if not Path(args.data).exists():
        raise ValueError(f"--data {args.data}: no such file or folder")
    val_size = args.val_size if args.val_size is not None else args.test_size
    for flag, v in (("--test_size", args.test_size), ("--val_size", val_size)):
        if not 0 < v < 1:
            raise ValueError(f"{flag} {v}: must be between 0 and 1")
    if args.test_size + val_size >= 1 and not args.folds:
        raise ValueError(f"--test_size {args.test_size} + --val_size {val_size} leave no training files")
    if args.folds is not None and (args.folds < 2 or 1 / args.folds + val_size >= 1):
        raise ValueError(f"--folds {args.folds}: needs K >= 2 and 1/K + the validation fraction {val_size:g} below 1")
    if args.repeats > 1 and not args.folds:
        raise ValueError(f"--repeats {args.repeats} repeats --folds K: give --folds")
    if args.ablation and args.resume:
        raise ValueError("--resume continues one run, not --ablation")
    if args.split and not Path(args.split).is_file():
        raise ValueError(f"--split {args.split}: no such file")
    if args.split and (args.folds or args.resume):
        raise ValueError(f"--split gives one predefined split: leave out {'--folds' if args.folds else '--resume'}")
    if args.resume and args.folds:
        raise ValueError("--resume continues one run, not --folds")
    if args.ablation and args.channels:
        raise ValueError("--ablation chooses the channels itself: leave out --channels")
    if args.pretrained and args.weights:
        raise ValueError("--pretrained and --weights both name the starting weights: give one")
    if args.pretrained and args.learnmethod not in BACKBONES and not args.resume:
        raise ValueError(f"--pretrained: published weights exist for {', '.join(BACKBONES)}, not {args.learnmethod}")
    if args.weights and not Path(args.weights).is_file():
        raise ValueError(f"--weights {args.weights}: no such file")
    if (args.pretrained or args.weights) and args.ablation:
        raise ValueError("--ablation's sound-only set cannot start from weights made for the picture: leave out "
                    "--pretrained / --weights, or train the sets one by one with --channels")
    for lr in [args.lr, *args.lr_grid]:
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning rate {lr}: must be a finite number >= 0")
    for flag in ("epochs", "batch_size", "frames", "size", "patience"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag} {getattr(args, flag)}: must be at least 1")
    resolve_device(args.device)  # ValueError, one line, when --device cuda has no GPU
    return val_size


def load_resume(path):
    """The run to continue: the checkpoint, the weights of its run's best.pt (if there is one) and its split
    (its run's split.json or, without one beside it, the copy the checkpoint keeps); ValueError when any of
    them cannot be read."""
    try:
        ckpt = checkpoint.load(path)
    except Exception as e:
        raise ValueError(f"--resume {path}: {error_summary(e)}")
    best, best_state = Path(path).parent / "best.pt", None
    if best.is_file():
        try:
            best_state = checkpoint.load(best).model_state
        except Exception as e:
            raise ValueError(f"--resume: {best}: {error_summary(e)} (move it away to continue without it)")
    saved = Path(path).parent / "split.json"
    try:
        split = read_split(saved) if saved.is_file() else ckpt.recipe.run.split
    except SplitError as e:
        raise ValueError(str(e))
    if split is None:
        raise ValueError(f"--resume {path}: its run saved no split (no split.json beside it): start a new run")
    return checkpoint.Resume(ckpt, best_state, split)


def _shown(value):
    """A flag's value as typed: 0.001, true, red,green,blue; None (all channels) as "all"."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return "all" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def resumed_flags(args, recipe, defaults=None):
    """({flag: value}, note): RESUMED_FLAGS (and, unless given, --positive_class) of the checkpoint's `recipe`,
    and one line naming each flag taken once, and the command line's values (of the argparse namespace `args`)
    not used: those other than the parser's `defaults` (a namespace)."""
    use = recipe.use_channels
    saved = {**recipe.run.flags, "learnmethod": recipe.learnmethod, "frames": recipe.frames, "size": recipe.size,
             "lr": recipe.lr, "channels": None if use is None else list(use)}
    taken, differing, values = [], [], {}
    for flag in RESUMED_FLAGS:
        if flag not in saved and flag in BEFORE_THE_FLAG:
            saved[flag] = BEFORE_THE_FLAG[flag]
        elif flag not in saved:  # a checkpoint of an older version: the command line's value
            continue
        given = getattr(args, flag, None)
        taken.append(f"--{flag} {_shown(saved[flag])}")
        if given is not None and given != saved[flag] and given != getattr(defaults, flag, None):
            differing.append(f"--{flag} {_shown(given)}")
        values[flag] = saved[flag]
    if getattr(args, "positive_class", None) is None:
        values["positive_class"] = saved.get("positive_class")
    note = "note: --resume takes from the checkpoint " + ", ".join(taken)
    return values, note + (f" (not this command line's {', '.join(differing)})" if differing else "")


def settle(args, *, val_size, resume=None, defaults=None, start=None):
    """(TrainSettings, note or None), or ValueError for settings the model cannot take: train.py's argparse
    namespace `args` (left as it is) with `val_size` (check_settings'), a resumed run's recipe (resumed_flags:
    the note names what it takes), and what the command line leaves out: the frames and size the starting
    weights `start` were trained on, else the model's usual (pretrained.input_defaults), the workers."""
    values, note = {**vars(args), "val_size": val_size}, None
    if resume is not None:  # the split and recipe must match the run being continued
        taken, note = resumed_flags(args, resume.checkpoint.recipe, defaults)
        values.update(taken)
    # not given: the input the starting weights were trained on (pretrained.StartWeights), else the model's usual
    usual = {**input_defaults(values["learnmethod"]), **(dict(start.input) if start is not None else {})}
    for flag, value in usual.items():
        if values[flag] is None:
            values[flag] = value
    if values["num_workers"] is None:
        values["num_workers"] = default_workers()
    problem = settings_problem(values["learnmethod"], size=values["size"])  # e.g. ViViT's size and patches
    if problem:
        raise ValueError(problem)
    return TrainSettings(**values), note
