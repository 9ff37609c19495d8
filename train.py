"""Train a video classifier (Conv3D, ConvLSTM or ViViT) on labelled FMRGB tensors (.pt files).

    $ python train.py --data data/ --epochs 20 --test_size 0.2 --patience 5 --learnmethod conv3d --islearnrate_search false
    $ python train.py --data labels.csv --learnmethod vivit --islearnrate_search true --lr_grid 1e-4 1e-3
    $ python train.py --data data/ --resume runs/conv3d-20240101-120000/last.pt --epochs 40
    $ torchrun --standalone --nproc_per_node=4 train.py --data data/ --learnmethod vivit --amp   # DDP

--data is a folder (every *.pt below it; label = the file's parent folder) or a CSV path,label.
The files are split stratified into train/val/test; early stopping watches the validation loss and
the best checkpoint (by validation loss) is evaluated once on the test set at the end.
Writes into --out: best.pt, last.pt, history.csv, curves.png, metrics.json, confusion.png,
roc.png (two classes), test_predictions.csv and, with a learning-rate search, lr_search.csv.
"""
import argparse
import shutil
import sys
from datetime import datetime
from pathlib import Path

import torch

from dataset import prepare_data
from fmrgb.checkpoint import checkpoint_base, load_checkpoint
from fmrgb.cli import error_summary, interruptible, parse_bool, usage_error
from fmrgb.distributed import barrier, process_group, resolve_device
from fmrgb.engine import fit, make_autocast, predict_probs, use_channels_last
from fmrgb.files import atomic_output, write_csv, write_json
from fmrgb.report import plot_curves, write_history, write_test_results
from fmrgb.sampling import make_loader, seed_everything
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
    p.add_argument("--batch_size", type=int, default=8, help="batch size (per process under DDP)")
    p.add_argument("--frames", type=int, default=32, help="time steps per clip given to the model")
    p.add_argument("--size", type=int, default=64, help="frames are resized to size x size")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and shuffling")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda if available")
    p.add_argument("--num_workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--amp", type=parse_bool, nargs="?", const=True, default=False, metavar="true|false",
                   help="bf16 autocast on CUDA")
    p.add_argument("--usescheduler", type=parse_bool, default=False, metavar="true|false",
                   help="cosine learning-rate decay over --epochs")
    p.add_argument("--out", default=None, help="output folder (default: runs/<learnmethod>-<YYYYmmdd-HHMMSS>; "
                                                "with --resume: the checkpoint's folder)")
    p.add_argument("--resume", default=None, help="continue training from this checkpoint (last.pt)")
    p.add_argument("--compile", type=parse_bool, nargs="?", const=True, default=False, metavar="true|false",
                   help="torch.compile the model")
    return p


def check_settings(args):
    """The validation fraction (--val_size, or --test_size's); a flag out of range exits 2."""
    if not Path(args.data).exists():
        usage_error(f"--data {args.data}: no such file or folder")
    val_size = args.val_size if args.val_size is not None else args.test_size
    for flag, v in (("--test_size", args.test_size), ("--val_size", val_size)):
        if not 0 < v < 1:
            usage_error(f"{flag} {v}: must be between 0 and 1")
    if args.test_size + val_size >= 1:
        usage_error(f"--test_size {args.test_size} + --val_size {val_size} leave no training files")
    for flag in ("epochs", "batch_size", "frames", "size", "patience"):
        if getattr(args, flag) < 1:
            usage_error(f"--{flag} {getattr(args, flag)}: must be at least 1")
    try:
        resolve_device(args.device)
    except ValueError as e:
        usage_error(str(e))
    return val_size


def load_resume(path):
    """The checkpoint to continue, with "best_state": the weights of its run's best.pt, if there is one."""
    try:
        ckpt = load_checkpoint(path)
    except Exception as e:
        usage_error(f"--resume {path}: {error_summary(e)}")
    best = Path(path).parent / "best.pt"
    if best.is_file():
        ckpt["best_state"] = load_checkpoint(best)["model_state"]
    return ckpt


@interruptible
def main(args):
    """Train per `args` (see get_args_parser); returns the exit status: 0, or 1 if the loss became
    nan/inf. Bad arguments or data exit 2 (SystemExit) with one line; Ctrl-C returns 130."""
    # ------------------------------------------------------------------------- settings
    val_size = check_settings(args)
    with process_group(args.device) as ctx:
        device, log = ctx.device, ctx.log
        learnmethod, frames, size, lr = args.learnmethod, args.frames, args.size, args.lr
        seed, test_size = args.seed, args.test_size
        resume = load_resume(args.resume) if args.resume else None
        if resume:  # the split and recipe must match the run being continued
            learnmethod, frames, size, lr = resume["model"], resume["frames"], resume["size"], resume["lr"]
            seed, test_size, val_size = (resume["train_args"][k] for k in ("seed", "test_size", "val_size"))
            if learnmethod != args.learnmethod:
                log(f"note: --resume continues a {learnmethod} run; --learnmethod {args.learnmethod} ignored")
        if args.amp and device.type != "cuda":
            log("note: --amp applies on CUDA only; training in float32")
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        train_args = {"seed": seed, "test_size": test_size, "val_size": val_size, "batch_size": args.batch_size,
                      "patience": args.patience, "usescheduler": args.usescheduler,
                      "weight_decay": args.weight_decay, "data": str(args.data)}
        out_dir = Path(args.out) if args.out else (
            Path(args.resume).parent if args.resume else
            Path("runs") / f"{learnmethod}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")

        # ------------------------------------------------------------------------- data
        seed_everything(seed)
        try:
            data = prepare_data(args.data, test_size=test_size, val_size=val_size, seed=seed, frames=frames,
                                size=size, num_workers=args.num_workers,
                                stats=(resume["mean"], resume["std"]) if resume else None, ctx=ctx)
        except (ValueError, RuntimeError, FileNotFoundError) as e:
            usage_error(str(e))
        if resume and data.classes != resume["classes"]:
            usage_error(f"--resume: the checkpoint's classes {resume['classes']} differ from the data's "
                        f"{data.classes}")
        resume_best = Path(args.resume).parent / "best.pt" if args.resume else None
        if ctx.master:
            out_dir.mkdir(parents=True, exist_ok=True)
            if resume_best is not None and resume_best.is_file() and not (out_dir / "best.pt").exists():
                with atomic_output(out_dir / "best.pt") as tmp:  # the continued run's best so far
                    shutil.copyfile(resume_best, tmp)
        barrier(ctx)
        layout, pin = INPUT_LAYOUT[learnmethod], device.type == "cuda"
        loader_kw = dict(batch_size=args.batch_size, seed=seed, num_workers=args.num_workers, pin_memory=pin)
        train_loader = make_loader(data.subset("train", frames=frames, size=size, layout=layout), shuffle=True,
                                   ctx=ctx, **loader_kw)
        val_loader = make_loader(data.subset("val", frames=frames, size=size, layout=layout), shuffle=False,
                                 ctx=ctx, **loader_kw)
        log(f"{learnmethod}: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test files, "
            f"classes {data.classes}, channels {data.info['channels']}, device {device}")

        # ------------------------------------------------------------------------- model + fit
        model_kwargs = {"in_channels": len(data.info["channels"]), "num_classes": len(data.classes),
                        "frames": frames, "size": size}
        channels_last = use_channels_last(learnmethod, device)
        search = args.islearnrate_search and resume is None  # a resumed run keeps its learning rate
        best, rows = None, []  # best: (lr, model, FitResult, folder) of the lowest validation loss
        for run_lr in args.lr_grid if search else [lr]:
            run_dir = out_dir / "lr_search" / f"lr_{run_lr:g}" if search else out_dir
            if search:
                log(f"--- learning rate {run_lr:g}")
            seed_everything(seed)
            model = build_model(learnmethod, **model_kwargs)  # the same initial weights on every process
            if ctx.rank > 0:  # but each process draws its own dropout masks (process 0 as a plain run)
                torch.manual_seed(seed + ctx.rank)
            base = checkpoint_base(learnmethod=learnmethod, model_kwargs=model_kwargs, classes=data.classes,
                                   info=data.info, mean=data.mean, std=data.std, frames=frames, size=size,
                                   lr=run_lr, train_args=train_args)
            if ctx.master:
                run_dir.mkdir(parents=True, exist_ok=True)
            try:
                result = fit(model, train_loader, val_loader, epochs=args.epochs, lr=run_lr, patience=args.patience,
                             device=device, out_dir=run_dir, ckpt_base=base, weight_decay=args.weight_decay,
                             usescheduler=args.usescheduler, amp=args.amp, compile=args.compile,
                             channels_last=channels_last, ctx=ctx, resume=None if search else resume)
            except FloatingPointError as e:  # raised on every process together (see run_epoch): one message
                log(f"error: training stopped: {e}", file=sys.stderr)
                return 1
            rows.append([f"{run_lr:g}", result.best_val_loss, result.best_epoch, result.epochs_run])
            if best is None or result.best_val_loss < best[2].best_val_loss:
                best = (run_lr, model, result, run_dir)
        lr, model, result, run_dir = best
        if ctx.master:
            if search:
                write_csv(out_dir / "lr_search.csv", ["lr", "best_val_loss", "best_epoch", "epochs_run"], rows)
                for name in ("best.pt", "last.pt"):
                    with atomic_output(out_dir / name) as tmp:
                        shutil.copyfile(run_dir / name, tmp)
                log(f"learning rate search: best lr {lr:g} (validation loss {result.best_val_loss:.4f})")
            write_history(out_dir / "history.csv", result.history)
            plot_curves(result.history, out_dir / "curves.png")

        # ------------------------------------------------------------------------- test
        # process 0 alone, on every test file, with the best weights
        if ctx.master:
            test_ds = data.subset("test", frames=frames, size=size, layout=layout)
            model.load_state_dict(result.best_state)
            model.to(device)
            probs, y_true = predict_probs(model, make_loader(test_ds, shuffle=False, **loader_kw), device=device,
                                          autocast=make_autocast(device, args.amp), channels_last=channels_last)

        # ------------------------------------------------------------------------- report
        if ctx.master:
            metrics = write_test_results(out_dir, paths=test_ds.paths, y_true=y_true, probs=probs,
                                         classes=data.classes)
            metrics.update({"n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
                            "learnmethod": learnmethod, "lr": float(lr), "best_epoch": int(result.best_epoch),
                            "best_val_loss": float(result.best_val_loss), "epochs_run": result.epochs_run,
                            "frames": frames, "size": size, "seed": seed})
            write_json(out_dir / "metrics.json", metrics)
            auc = "n/a" if metrics["roc_auc"] is None else format(metrics["roc_auc"], ".4f")
            log(f"test: accuracy {metrics['accuracy']:.4f}  balanced accuracy {metrics['balanced_accuracy']:.4f}  "
                f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}  "
                f"roc auc {auc}")
            log(f"confusion matrix (rows true, columns predicted; {data.classes}): {metrics['confusion_matrix']}")
            log(f"wrote {out_dir}")
        barrier(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
