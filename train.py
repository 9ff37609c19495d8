"""Train a video classifier (Conv3D, ConvLSTM, ViViT or a VideoResNet backbone) on labelled FMRGB tensors (.pt files).

    $ python train.py --data data/ --epochs 20 --test_size 0.2 --patience 5 --learnmethod conv3d --islearnrate_search false
    $ python train.py --data labels.csv --learnmethod vivit --islearnrate_search true --lr_grid 1e-4 1e-3
    $ python train.py --data data/ --resume runs/conv3d-20240101-120000/last.pt --epochs 40
    $ torchrun --standalone --nproc_per_node=4 train.py --data data/ --learnmethod vivit --amp   # DDP

    $ python train.py --data data/ --folds 5 --ablation --epochs 20     # does the sound help?
    $ python train.py --data data/ --learnmethod r2plus1d_18 --pretrained --lr 1e-3   # fine-tune Kinetics-400 weights

--data is a folder (every *.pt below it; label = the file's parent folder) or a CSV path,label
(optionally group: files of one group stay together). The split: --split FILE, else the data's own
(train/ val/ test/ folders at the top, a CSV split column), else stratified by groups (copies of a
clip never straddle it: fmrgb/training/splits.py); split.json records it and where it came from. Early
stopping watches the validation loss and the best checkpoint (by validation loss) is evaluated once
on the test set at the end. Writes into --out: split.json, best.pt, last.pt, history.csv, curves.png, metrics.json,
confusion.png, roc.png (two classes), test_predictions.csv and, with a learning-rate search, lr_search.csv.
--folds K: those per fold in fold_<i>/, plus folds.csv and the mean and std in metrics.json; --ablation: that for
all channels, the picture's and the sound's, plus ablation.csv, ablation.png and the paired differences.
"""
import argparse
import dataclasses
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from dataset import prepare_split
from fmrgb.training.augment import Augment
from fmrgb.training.cache import ClipCache
from fmrgb.training.checkpoint import Recipe, RecordSettings, RunArgs
from fmrgb.cli import error_summary, hold_data, interruptible, parse_bool, positive_int, usage_error, warn
from fmrgb.training.clip import ClipRecipe, channel_indices, channel_roles
from fmrgb.training.distributed import barrier, process_group
from fmrgb.training.engine import (Execution, Optimisation, class_weights, fast_kernels, fit, no_decay_names,
                                   predict_probs, use_channels_last)
from fmrgb.training.experiment import channel_sets, run_experiment
from fmrgb.files import atomic_output, write_csv, write_json
from fmrgb.training.pretrained import input_stats, lr_factors, model_from_weights, start_weights
from fmrgb.report import plot_curves, positive_index, summary_lines, write_history, write_test_results
from fmrgb.training.sampling import make_loader, seed_everything
from fmrgb.training.settings import TrainSettings, check_settings, load_resume, settle
from fmrgb.training.splits import PARTS, plan_splits, read_split, write_split
from fmrgb.training.survey import crossing_lines, survey_data
from model import INPUT_LAYOUT, MODELS, build_model


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="folder of <class>/*.pt files, or a CSV with columns path,label")
    p.add_argument("--epochs", type=int, default=20, help="number of epochs (total, also when resuming)")
    p.add_argument("--test_size", type=float, default=0.2, help="fraction of the files held out for the test")
    p.add_argument("--val_size", type=float, default=None,
                   help="fraction of the files for validation; None: the same as --test_size")
    p.add_argument("--patience", type=int, default=5,
                   help="stop after this many epochs without a lower validation loss")
    p.add_argument("--learnmethod", default="conv3d", choices=sorted(MODELS), help="model")
    p.add_argument("--islearnrate_search", type=parse_bool, default=False, metavar="true|false",
                   help="train once per --lr_grid value and keep the lowest validation loss")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (AdamW)")
    p.add_argument("--lr_grid", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3],
                   help="learning rates to search")
    p.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--decay_norm_bias", type=parse_bool, default=False, metavar="true|false",
                   help="also decay normalisation layers and biases (default: the other weights only)")
    p.add_argument("--batch_size", type=int, default=8, help="batch size (per process under DDP)")
    p.add_argument("--frames", type=int, default=None, help="time steps per clip given to the model (default: "
                   "a --weights checkpoint's, else 16 for a backbone, else 32)")
    p.add_argument("--size", type=int, default=None, help="frames are resized to size x size (default: a "
                   "--weights checkpoint's, else 112 for a backbone, else 64)")
    p.add_argument("--pretrained", type=parse_bool, nargs="?", const=True, default=False, metavar="true|false",
                   help="a backbone (r3d_18, mc3_18, r2plus1d_18) starts from torchvision's Kinetics-400 weights, "
                        "downloaded once into torch's cache")
    p.add_argument("--weights", default=None, metavar="PATH", help="start from this state dict instead "
                                                                    "(torchvision's file, or a train.py checkpoint)")
    p.add_argument("--pretrained_lr_factor", type=float, default=0.1,
                   help="with --pretrained/--weights: the pretrained layers' learning rate is --lr times this; "
                        "the inflated stem convolution and a new head learn at --lr")
    p.add_argument("--augment", type=parse_bool, default=True, metavar="true|false", help="augment the training "
                   "clips (random frame per time segment; picture channels: random crops and flips; sound channels "
                   "only resized); never validation, test or predict")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and shuffling")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available")
    p.add_argument("--num_workers", type=int, default=None, help="DataLoader worker processes (default: the cores "
                   "available, shared by torchrun's processes on this machine, at most 16)")
    p.add_argument("--cache", default=None, metavar="DIR|none", help="where the small clips (the picked frames at "
                   "--frames/--size, uint8) are kept for this and later runs (default: <data folder, or the CSV's "
                   "folder>/.fmrgb_cache; none: no cache)")
    p.add_argument("--amp", type=parse_bool, nargs="?", const=True, default=False, metavar="true|false",
                   help="bf16 autocast on CUDA")
    p.add_argument("--usescheduler", type=parse_bool, default=False, metavar="true|false",
                   help="cosine learning-rate decay over --epochs")
    p.add_argument("--out", default=None, help="output folder (default: runs/<learnmethod>-<YYYYmmdd-HHMMSS>; "
                                                "with --resume: the checkpoint's folder)")
    p.add_argument("--resume", default=None, help="continue training from this checkpoint (last.pt)")
    p.add_argument("--compile", type=parse_bool, nargs="?", const=True, default=False, metavar="true|false",
                   help="torch.compile the model")
    p.add_argument("--channels", type=lambda t: [c.strip() for c in t.split(",")], default=None, metavar="NAME,...",
                   help="train on these channels of the files only, by name (e.g. red,green,blue or amplitude,frequency)")
    p.add_argument("--positive_class", default=None, metavar="NAME",
                   help="two classes: the class precision, recall, F1, AP and ROC are of (default: the class whose "
                        "name is not a negation, as Fight of Fight/NonFight; else the second, sorted)")
    p.add_argument("--class_weight", default="none", choices=["none", "balanced"],
                   help="balanced: weigh each class's loss by n / (K x its count) in the training part")
    p.add_argument("--split", default=None, metavar="FILE",
                   help="a split.json (another run's, or written by hand) used as it is; default: the data's own "
                        "(train/ val/ test/ folders, a CSV split column), else a random stratified group split")
    p.add_argument("--folds", type=positive_int, default=None, metavar="K",
                   help="stratified group K-fold cross-validation (K >= 2): each fold tests on its own part")
    p.add_argument("--repeats", type=positive_int, default=1, metavar="R", help="with --folds: repeat the K folds "
                   "R times with other seeds (narrower intervals)")
    p.add_argument("--ablation", action="store_true",
                   help="the same folds (or split) for all channels, the picture only and the sound only")
    return p


@dataclasses.dataclass(frozen=True)
class Session:
    """What every training run of one command shares: its settings, the surveyed data, the processes, the clip
    cache (None: clips made from the records every time), the weights a new run starts from (pretrained.start_weights;
    None: none), the run it continues (checkpoint.Resume; None: a new run), its split's source (split.json's)."""
    settings: TrainSettings
    survey: Any
    ctx: Any
    cache: Any = None
    weights: Any = None
    resume: Any = None
    split_source: str = ""


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """One training run, ready to fit: its folder, data (dataset.Prepared), the channel names asked for (None:
    all) and those the model takes, the positive class's index, the model's arguments, the checkpoint's run
    arguments (fresh_parameters still to come), how the model runs and the loaders."""
    out_dir: Path
    data: Any
    channel_names: Any
    input_names: tuple
    positive: int
    model_kwargs: dict
    run_args: RunArgs
    execution: Execution
    loader_kw: dict
    train_loader: Any
    val_loader: Any


def clips(session, data, part, **kw):
    """The uint8 clips of `part` of `data` (normalised on the device, by Execution.normalise)."""
    s = session.settings
    return data.subset(part, frames=s.frames, size=s.size, layout=INPUT_LAYOUT[s.learnmethod], cache=session.cache,
                       uint8=True, **kw)


@dataclasses.dataclass(frozen=True)
class Best:
    """The learning rate whose fit had the lowest validation loss: its model, FitResult and folder."""
    lr: float
    model: Any
    result: Any
    run_dir: Path


def prepare_run(session, parts, channel_names, out_dir):
    """Step 1: the data of `parts` ({"train", "val", "test"} indices of the survey) on the channels named (None:
    all), the run folder (split.json; a resumed run's best.pt so far) and the loaders -> PreparedRun.
    The channels the starting weights know are normalised as they were trained (pretrained.input_stats)."""
    s, ctx, survey, resume = session.settings, session.ctx, session.survey, session.resume
    channels = None if channel_names is None else channel_indices(survey.info["channels"], channel_names)
    stats = (list(resume.checkpoint.recipe.mean), list(resume.checkpoint.recipe.std)) if resume else None
    try:
        data = prepare_split(survey, parts, frames=s.frames, size=s.size, channels=channels, num_workers=s.num_workers,
                             stats=stats, ctx=ctx, cache=session.cache)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        usage_error(str(e))
    names = data.channel_names()
    if session.weights is not None:
        mean, std = input_stats(session.weights, names, data.mean, data.std)
        data = dataclasses.replace(data, mean=mean, std=std)
    augment = Augment(roles=channel_roles(names)) if s.augment else None
    positive = positive_index(data.classes, s.positive_class)
    weights = class_weights(s.class_weight, [data.labels[i] for i in data.train], len(data.classes))
    run_args = RunArgs({**s.flags(), "data": str(s.data), "channels": channel_names,
                        "positive_class": data.classes[positive] if len(data.classes) == 2 else None},
                       split={k: [survey.names[i] for i in parts[k]] for k in PARTS},
                       class_weights=weights)
    resume_best = Path(s.resume).parent / "best.pt" if resume else None
    if ctx.master:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_split(out_dir / "split.json", survey.names, parts, session.split_source)
        if resume_best is not None and resume_best.is_file() and not (out_dir / "best.pt").exists():
            with atomic_output(out_dir / "best.pt") as tmp:  # the continued run's best so far
                shutil.copyfile(resume_best, tmp)
    barrier(ctx)
    # uint8 clips to the device (a quarter of float32's bytes), normalised there: data.normaliser
    device = ctx.device
    execution = Execution(device, amp=s.amp, channels_last=use_channels_last(s.learnmethod, device),
                          normalise=data.normaliser(INPUT_LAYOUT[s.learnmethod], device), compile=s.compile)
    loader_kw = dict(batch_size=s.batch_size, seed=s.seed, num_workers=s.num_workers, pin_memory=device.type == "cuda")
    model_kwargs = {"in_channels": len(channels or data.info["channels"]), "num_classes": len(data.classes),
                    "frames": s.frames, "size": s.size}
    train_loader = make_loader(clips(session, data, "train", augment=augment), shuffle=True, ctx=ctx, **loader_kw)
    val_loader = make_loader(clips(session, data, "val"), shuffle=False, ctx=ctx, **loader_kw)
    ctx.log(f"{s.learnmethod}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test files, "
            f"classes {data.classes}, channels {channel_names or data.info['channels']}, device {device}")
    return PreparedRun(out_dir, data, channel_names, tuple(names), positive, model_kwargs, run_args, execution,
                       loader_kw, train_loader, val_loader)


def start_model(session, run):
    """A new model (the same initial weights on every process), from the starting weights if there are any."""
    s = session.settings
    seed_everything(s.seed)
    try:
        if session.weights is None:
            return build_model(s.learnmethod, **run.model_kwargs)
        return model_from_weights(s.learnmethod, session.weights, channels=run.input_names, classes=run.data.classes,
                                  **run.model_kwargs)
    except (AssertionError, RuntimeError, ValueError) as e:  # weights of another architecture: the first key that differs
        detail = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), error_summary(e))
        usage_error(f"--{'pretrained' if s.pretrained else 'weights'}: not weights of {s.learnmethod}: {detail}")


def fit_at(session, run, lr, run_dir, resume):
    """One fit at learning rate `lr` into `run_dir` -> (model, FitResult); FloatingPointError if the loss
    became nan/inf. A pretrained backbone's pretrained layers learn at --lr x --pretrained_lr_factor."""
    s, ctx = session.settings, session.ctx
    model = start_model(session, run)
    # a resumed run takes its checkpoint's split of the parameters, so that its optimizer groups match
    saved = session.resume.checkpoint.recipe.run if session.resume else RunArgs()
    fresh = sorted(model.fresh_parameters) if session.weights is not None else saved.fresh_parameters
    factor = s.pretrained_lr_factor if session.weights is not None else saved.flag("pretrained_lr_factor", 1.0)
    run_args = dataclasses.replace(run.run_args, flags={**run.run_args.flags, "pretrained_lr_factor": factor},
                                   fresh_parameters=fresh)
    if session.weights is not None:
        ctx.log(f"{s.learnmethod}: starting from {session.weights.source}; new at --lr: "
                f"{', '.join(fresh) or 'nothing'}; the rest at --lr x {factor:g}")
    if ctx.rank > 0:  # but each process draws its own dropout masks (process 0 as a plain run)
        torch.manual_seed(s.seed + ctx.rank)
    recipe = Recipe.of(learnmethod=s.learnmethod, model_kwargs=run.model_kwargs, classes=run.data.classes,
                       record=RecordSettings.of(run.data.info), mean=run.data.mean, std=run.data.std, frames=s.frames,
                       size=s.size, lr=lr, run=run_args, use_channels=run.channel_names)
    plan = Optimisation(lr=lr, epochs=s.epochs, patience=s.patience, weight_decay=s.weight_decay,
                        usescheduler=s.usescheduler, class_weights=run.run_args.class_weights,
                        lr_factors=None if fresh is None else lr_factors(model, fresh, factor),
                        no_decay=frozenset() if s.decay_norm_bias else no_decay_names(model))
    if ctx.master:
        run_dir.mkdir(parents=True, exist_ok=True)
    result = fit(model, run.train_loader, run.val_loader, plan, run.execution, out_dir=run_dir, recipe=recipe,
                 ctx=ctx, resume=resume)
    return model, result


def fit_best(session, run):
    """Step 2: fit at --lr, or at each --lr_grid value with --islearnrate_search (a resumed run keeps its
    learning rate), and keep the lowest validation loss -> Best, or None if the loss became nan/inf. Writes
    history.csv, curves.png and, after a search, lr_search.csv and the best fit's best.pt and last.pt."""
    s, ctx, out_dir = session.settings, session.ctx, run.out_dir
    search = s.islearnrate_search and session.resume is None
    best, rows = None, []
    for lr in s.lr_grid if search else [s.lr]:
        run_dir = out_dir / "lr_search" / f"lr_{lr:g}" if search else out_dir
        if search:
            ctx.log(f"--- learning rate {lr:g}")
        try:
            model, result = fit_at(session, run, lr, run_dir, None if search else session.resume)
        except FloatingPointError as e:  # raised on every process together (see run_epoch): one message
            ctx.log(f"error: training stopped: {e}", file=sys.stderr)
            return None
        rows.append([f"{lr:g}", result.best_val_loss, result.best_epoch, result.epochs_run])
        if best is None or result.best_val_loss < best.result.best_val_loss:
            best = Best(lr, model, result, run_dir)
    if ctx.master:
        if search:
            write_csv(out_dir / "lr_search.csv", ["lr", "best_val_loss", "best_epoch", "epochs_run"], rows)
            for name in ("best.pt", "last.pt"):
                with atomic_output(out_dir / name) as tmp:
                    shutil.copyfile(best.run_dir / name, tmp)
            ctx.log(f"learning rate search: best lr {best.lr:g} (validation loss {best.result.best_val_loss:.4f})")
        write_history(out_dir / "history.csv", best.result.history)
        plot_curves(best.result.history, out_dir / "curves.png")
    return best


def test_and_report(session, run, best):
    """Step 3: the best weights on the test files (under DDP every process its share, gathered on process 0),
    their metrics written and shown -> the test metrics on process 0, None on the others."""
    s, ctx, data = session.settings, session.ctx, run.data
    metrics, test_ds = None, clips(session, data, "test")
    best.model.load_state_dict(best.result.best_state)
    model = best.model.to(ctx.device)
    probs, y_true = predict_probs(model, make_loader(test_ds, shuffle=False, ctx=ctx, **run.loader_kw),
                                  run.execution, ctx=ctx)
    if ctx.master:
        metrics = write_test_results(run.out_dir, paths=test_ds.paths, y_true=y_true, probs=probs,
                                     classes=data.classes, positive=run.positive)
        metrics.update({"n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
                        "learnmethod": s.learnmethod, "lr": float(best.lr), "best_epoch": int(best.result.best_epoch),
                        "best_val_loss": float(best.result.best_val_loss), "epochs_run": best.result.epochs_run,
                        "frames": s.frames, "size": s.size, "seed": s.seed,
                        "channels": list(run.channel_names or data.info["channels"])})
        write_json(run.out_dir / "metrics.json", metrics)
        for line in summary_lines(metrics):
            ctx.log(line)
        ctx.log(f"wrote {run.out_dir}")
    barrier(ctx)
    return metrics


def train_one(session, parts, channel_names, out_dir):
    """One training run on `parts` ({"train", "val", "test"} indices of the survey), on the channels named
    (None: all), its outputs in out_dir -> (exit status, test metrics on process 0)."""
    run = prepare_run(session, parts, channel_names, out_dir)
    best = fit_best(session, run)
    return (1, None) if best is None else (0, test_and_report(session, run, best))


def settle_run(args, val_size, ctx):
    """The settings step: the run's TrainSettings (a resumed run's recipe, the model's usual input), the run it
    continues, the weights it starts from, its clip cache and its folder; bad settings exit 2."""
    try:
        resume = load_resume(args.resume) if args.resume else None
        weights = None if resume else start_weights(args, ctx)
        s, note = settle(args, val_size=val_size, resume=resume, start=weights,
                         defaults=get_args_parser().parse_args(["--data", str(args.data)]))
        if note:
            ctx.log(note)
        if resume and (args.pretrained or args.weights):
            ctx.log("note: --resume continues its checkpoint's weights; --pretrained / --weights ignored")
    except ValueError as e:
        usage_error(str(e))
    if args.amp and ctx.device.type != "cuda":
        ctx.log("note: --amp applies on CUDA only; training in float32")
    fast_kernels(ctx.device)
    cache = ClipCache.for_setting(args.cache, args.data, ClipRecipe(s.frames, s.size))
    why = cache and cache.problem()
    if why:
        ctx.log(f"note: no cache ({why}): the clips are made from the files every epoch; pass --cache DIR "
                f"to keep them elsewhere")
        cache = None
    out_dir = Path(args.out) if args.out else (
        Path(args.resume).parent if args.resume else
        Path("runs") / f"{s.learnmethod}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    return s, resume, weights, cache, out_dir


def survey_run(s, resume, ctx):
    """The data step: the files listed once (process 0), checked and grouped by all -> (Survey, the splits, the
    channel sets); a resumed run keeps its split, files added since left out. Bad data exit 2."""
    try:
        saved = resume.split if resume else read_split(s.split) if s.split else None
        survey = survey_data(s.data, saved=saved, saved_by="--split" if s.split else "--resume", group=not resume,
                             ctx=ctx, on_skip=warn)
        splits, source = plan_splits(survey, s, saved)
        positive_index(survey.classes, s.positive_class)  # a --positive_class not among two classes stops here
        sets = channel_sets(survey.info["channels"]) if s.ablation else [(None, s.channels)]
        for names in (names for _, names in sets if names is not None):
            channel_indices(survey.info["channels"], names)  # an unknown name stops here, before training
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        usage_error(str(e))
    if survey.ignored:
        ctx.log(f"note: {survey.ignored} file(s) under --data are not in the {'--split' if s.split else 'resumed run'}"
                f"'s split.json: left out")
    ctx.log(f"split: {source}" + (f"; by groups: {survey.grouping}" if survey.grouping else ""))
    for line in crossing_lines(survey.names, survey.groups, splits[0]) if s.split or survey.parts else []:
        ctx.log(line)
    classes = resume and list(resume.checkpoint.recipe.classes)
    if resume and survey.classes != classes:
        usage_error(f"--resume: the checkpoint's classes {classes} differ from the data's {survey.classes}")
    return survey, splits, source, sets


@interruptible
def main(args):
    """Train per `args` (see get_args_parser); returns the exit status: 0, or 1 if the loss became
    nan/inf. Bad arguments or data exit 2 (SystemExit) with one line; Ctrl-C returns 130."""
    try:
        val_size = check_settings(args)
    except ValueError as e:
        usage_error(str(e))
    with hold_data(args.data), process_group(args.device) as ctx:
        s, resume, weights, cache, out_dir = settle_run(args, val_size, ctx)       # settings
        survey, splits, source, sets = survey_run(s, resume, ctx)                 # data
        session = Session(s, survey, ctx, cache=cache, weights=weights, resume=resume, split_source=source)
        if s.folds or s.ablation:                                                 # model, fit, test, report
            return run_experiment(lambda parts, names, run_dir: train_one(session, parts, names, run_dir),
                                  splits, sets, out_dir, ctx, seed=s.seed)
        return train_one(session, splits[0], s.channels, out_dir)[0]


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
