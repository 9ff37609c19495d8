"""The settings of a training run: which flags work together, what a resumed run continues from, and
which weights a new run starts from. Each function raises ValueError with one line; train.py exits 2.

    val_size = check_settings(args)            # args: train.py's argparse namespace
    ckpt = load_resume("runs/x/last.pt")       # with "best_state" and "split"
    weights = start_weights(s, ctx)            # a state dict, or None
"""
import math
from pathlib import Path

from fmrgb.checkpoint import download_pretrained, load_checkpoint, load_state_dict_file
from fmrgb.cli import error_summary
from fmrgb.distributed import on_master, resolve_device
from fmrgb.splits import SplitError, read_split
from model import BACKBONES


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
    if args.ablation and not args.folds:
        raise ValueError("--ablation needs --folds K")
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
    """The checkpoint to continue, with "best_state" (the weights of its run's best.pt, if there is one)
    and "split" (its run's split.json or, without one beside it, the copy the checkpoint keeps); ValueError
    when any of them cannot be read."""
    try:
        ckpt = load_checkpoint(path)
    except Exception as e:
        raise ValueError(f"--resume {path}: {error_summary(e)}")
    best = Path(path).parent / "best.pt"
    if best.is_file():
        try:
            ckpt["best_state"] = load_checkpoint(best)["model_state"]
        except Exception as e:
            raise ValueError(f"--resume: {best}: {error_summary(e)} (move it away to continue without it)")
    saved = Path(path).parent / "split.json"
    try:
        ckpt["split"] = read_split(saved) if saved.is_file() else ckpt["train_args"]["split"]
    except SplitError as e:
        raise ValueError(str(e))
    except KeyError:
        raise ValueError(f"--resume {path}: its run saved no split (no split.json beside it): start a new run")
    return ckpt


def start_weights(s, ctx):
    """The state dict a new run starts from, or None: --pretrained (process 0 downloads it into torch's cache,
    then every process reads it there) or --weights; ValueError when they cannot be had."""
    if s.pretrained:
        try:
            on_master(lambda: download_pretrained(s.learnmethod) is None, ctx)
            return download_pretrained(s.learnmethod)
        except RuntimeError as e:
            raise ValueError(f"--pretrained: {e}; without a network, fetch that file elsewhere and pass --weights PATH")
    if s.weights:
        try:
            return load_state_dict_file(s.weights)
        except Exception as e:
            raise ValueError(f"--weights {s.weights}: {error_summary(e)}")
    return None
