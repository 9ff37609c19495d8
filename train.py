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
import contextlib
import csv
import json
import math
import os
import random
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dataset import FMRGBDataset, class_names, common_length, compute_stats, find_data, inspect_files, split_indices
from media import atomic_output, error_summary, interruptible
from model import INPUT_LAYOUT, MODELS, build_model

CHECKPOINT_VERSION = 1


# ----------------------------------------------------------------------------- arguments

def parse_bool(text):
    """'true'/'false' (also 1/0, yes/no, on/off, any case) -> bool."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on", "t"):
        return True
    if value in ("false", "0", "no", "n", "off", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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


def usage_error(msg):
    """One clear line and exit status 2 (bad command line or data)."""
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


# ----------------------------------------------------------------------------- setup

def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id):
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def resolve_device(name):
    """'auto' | 'cpu' | 'cuda' -> torch.device; 'cuda' without a GPU is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(name)


def setup_distributed(device_name):
    """DDP when torchrun set RANK/WORLD_SIZE/LOCAL_RANK, else a single process.
    Returns {"ddp", "rank", "local_rank", "world_size", "master", "device"}."""
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if not ddp:
        return {"ddp": False, "rank": 0, "local_rank": 0, "world_size": 1, "master": True,
                "device": resolve_device(device_name)}
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo")
    return {"ddp": True, "rank": rank, "local_rank": local_rank, "world_size": world, "master": rank == 0,
            "device": device}


def teardown_distributed(ctx):
    if ctx["ddp"]:
        import gc

        import torch.distributed as dist

        gc.collect()  # a DDP model kept alive by a traceback's reference cycle should not outlive its group
        dist.destroy_process_group()


def barrier(ctx):
    if ctx["ddp"]:
        import torch.distributed as dist

        device = ctx["device"]
        dist.barrier(device_ids=[device.index] if device.type == "cuda" else None)


def broadcast_object(obj, ctx):
    """`obj` of process 0 on every process (a picklable Python object); the object itself without DDP."""
    if not ctx["ddp"]:
        return obj
    import torch.distributed as dist

    box = [obj if ctx["master"] else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ----------------------------------------------------------------------------- data

def prepare_data(data, *, test_size, val_size, seed, frames, size, num_workers=0, stats=None, ctx=None):
    """Find, check, split the files and compute the training set's channel statistics.

    Returns {"paths", "labels" (int), "classes", "train", "val", "test" (index lists), "info"
    (see dataset.inspect_files; "pt_frames" of the training files), "mean", "std"}.
    `stats=(mean, std)` reuses given statistics (resuming) instead of computing them.
    Under DDP (`ctx`) process 0 computes the statistics and broadcasts them (one pass over the
    training files instead of one per process, and bitwise the same numbers everywhere); an error
    there is raised on every process, so none waits forever."""
    paths, names = find_data(data)
    classes = class_names(names)
    train, val, test = split_indices(names, test_size=test_size, val_size=val_size, seed=seed)
    info = inspect_files(paths)
    info["pt_frames"] = common_length([info["lengths"][i] for i in train])
    if stats is None:
        ddp = ctx is not None and ctx["ddp"]
        result = None
        if not ddp or ctx["master"]:
            try:
                result = ("ok", compute_stats([paths[i] for i in train], frames=frames, size=size,
                                              num_workers=num_workers))
            except (ValueError, RuntimeError, FileNotFoundError) as e:
                if not ddp:
                    raise
                result = (type(e).__name__, str(e))
        kind, stats = broadcast_object(result, ctx) if ddp else result
        if kind != "ok":
            raise {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}.get(kind, RuntimeError)(stats)
    mean, std = stats
    return {"paths": paths, "labels": [classes.index(n) for n in names], "classes": classes,
            "train": train, "val": val, "test": test, "info": info, "mean": list(mean), "std": list(std)}


def subset(data, part, *, frames, size, layout):
    idx = data[part]
    return FMRGBDataset([data["paths"][i] for i in idx], [data["labels"][i] for i in idx], frames=frames,
                        size=size, mean=data["mean"], std=data["std"], layout=layout)


class ShardedShuffleSampler(torch.utils.data.Sampler):
    """The training order of every run, plain (num_replicas=1) or DDP (one per process).

    Each epoch is one permutation of the n items, the same on every process (seeded with
    seed + epoch: call set_epoch); process `rank` of `num_replicas` takes its positions rank,
    rank + num_replicas, ... (like torch's DistributedSampler, padded by repeating the first items so
    every process takes ceil(n / num_replicas) items and the same number of steps). Hence the items
    of DDP step k united over the processes are exactly the plain run's batch k when the plain
    --batch_size is num_replicas x the per-process one and n is a multiple of num_replicas
    (otherwise the last DDP step also holds the padding repeats).
    The permutation is randperm(n) after one 64-bit draw from the seeded generator: the order the
    earlier RandomSampler-based loader gave plain runs (--num_workers 0), so they train as before."""

    def __init__(self, n, *, num_replicas=1, rank=0, seed=0):
        assert num_replicas >= 1 and 0 <= rank < num_replicas, f"rank {rank} of {num_replicas}"
        self.n, self.num_replicas, self.rank, self.seed, self.epoch = int(n), num_replicas, rank, seed, 0
        self.per_replica = math.ceil(self.n / num_replicas)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def permutation(self):
        """The epoch's order of all n items (before padding and sharding)."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        torch.empty((), dtype=torch.int64).random_(generator=g)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self):
        order = self.permutation()
        total = self.per_replica * self.num_replicas
        while order and len(order) < total:
            order += order[:total - len(order)]
        return iter(order[self.rank:total:self.num_replicas])

    def __len__(self):
        return self.per_replica


def make_loader(dataset, *, batch_size, shuffle, seed, num_workers, ctx=None, pin_memory=False):
    """Deterministic DataLoader (seeded generator and workers; reseed per epoch with set_loader_epoch).

    Training (shuffle=True): a ShardedShuffleSampler, with one replica in a plain run and one per
    process under DDP, so the two sample alike (see there). Evaluation under DDP: a strided shard per
    process, each item exactly once over all processes (no padding duplicates), so metrics summed
    over processes cover every file once."""
    ddp = ctx is not None and ctx["ddp"]
    world, rank = (ctx["world_size"], ctx["rank"]) if ddp else (1, 0)
    sampler = None
    if shuffle:
        sampler = ShardedShuffleSampler(len(dataset), num_replicas=world, rank=rank, seed=seed)
    elif ddp:
        sampler = list(range(rank, len(dataset), world))
    gen = torch.Generator()
    gen.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler,
                        num_workers=num_workers, pin_memory=pin_memory, generator=gen, worker_init_fn=seed_worker,
                        persistent_workers=num_workers > 0)
    loader.seed = seed
    return loader


def set_loader_epoch(loader, epoch):
    """Same shuffling for an epoch whether or not the run was resumed."""
    if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    loader.generator.manual_seed(loader.seed + epoch)


# ----------------------------------------------------------------------------- checkpoints

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


def checkpoint_base(*, learnmethod, model_kwargs, data, frames, size, lr, train_args):
    """The fields every checkpoint of a run shares (what predict.py needs to rebuild the recipe)."""
    info = data["info"]
    return {
        "format_version": CHECKPOINT_VERSION,
        "model": learnmethod,
        "model_kwargs": dict(model_kwargs),
        "layout": INPUT_LAYOUT[learnmethod],
        "classes": list(data["classes"]),
        "channels": list(info["channels"]),
        "mean": [float(m) for m in data["mean"]],
        "std": [float(s) for s in data["std"]],
        "frames": int(frames),
        "size": int(size),
        "audiomethod": info["audiomethod"],
        "frequency_param": info["frequency_param"],
        "sample_rate": info["sample_rate"],
        "pt_frames": info["pt_frames"],
        "lr": float(lr),
        "train_args": dict(train_args),
    }


# ----------------------------------------------------------------------------- training

def to_input(x, device, channels_last=False):
    """A batch on `device` (channels-last 3d for Conv3D on CUDA: see use_channels_last)."""
    if channels_last:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last_3d)
    return x.to(device, non_blocking=True)


def use_channels_last(learnmethod, device):
    """Conv3D on CUDA runs its cuDNN convolutions in channels-last 3d (NDHWC) memory format, the
    tensor-core layout (faster with and without --amp); other models and the CPU keep the default."""
    return device.type == "cuda" and learnmethod == "conv3d"


def _nonfinite_error(desc, nan, inf, procs=None):
    what = "nan" if nan else "inf"
    where = f" (on {procs[0]} of {procs[1]} processes)" if procs else ""
    return FloatingPointError(f"{desc}: the loss became {what}{where}; try a lower --lr")


def run_epoch(model, loader, *, device, optimizer=None, autocast=None, ctx=None, desc="", show_progress=False,
              channels_last=False):
    """One pass over `loader` (training if `optimizer` is given) -> (mean loss, accuracy, steps),
    summed over all DDP processes (and then broadcast from process 0, so every process holds the same
    numbers and takes the same early-stopping decision). A non-finite loss raises FloatingPointError
    on every process together: under DDP a training step all-reduces a "non-finite" flag before the
    backward pass (a process that stopped alone would leave the others waiting in DDP's gradient
    all-reduce); evaluation, whose processes may take different numbers of batches, adds the flag
    to the sums reduced at the end."""
    from tqdm import tqdm

    ddp = ctx is not None and ctx["ddp"]
    if ddp:
        import torch.distributed as dist
    training = optimizer is not None
    model.train(training)
    autocast = autocast or contextlib.nullcontext
    sums = torch.zeros(6, dtype=torch.float64, device=device)  # loss * n, correct, n, nan, inf, procs with nan/inf
    steps = 0
    with torch.set_grad_enabled(training):
        for x, y in tqdm(loader, desc=desc, leave=False, disable=None if show_progress else True,
                         file=sys.stderr, unit="batch"):
            x = to_input(x, device, channels_last)
            y = y.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            bad = torch.stack([loss.isnan(), loss.isinf()]).double()
            if training and ddp:
                flags = torch.cat([bad, bad.amax().view(1)])
                dist.all_reduce(flags)
                if flags[2] > 0:
                    nan, inf, procs = flags.tolist()
                    raise _nonfinite_error(desc, nan, inf, (int(procs), ctx["world_size"]))
            elif not ddp and bad.sum() > 0:
                raise _nonfinite_error(desc, *bad.tolist())
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
            n = y.numel()
            sums += torch.cat([torch.stack([loss.detach().double().nan_to_num() * n,
                                            (logits.argmax(1) == y).sum().double(),
                                            torch.tensor(n, dtype=torch.float64, device=device)]),
                               bad, bad.amax().view(1)])
    if ddp:
        sums[5] = sums[5].clamp(max=1)  # this process saw a non-finite loss (counted once)
        dist.all_reduce(sums)
        dist.broadcast(sums, src=0)  # bitwise the same values on every process, whatever the backend
    loss_sum, correct, n, nan, inf, procs = sums.tolist()
    if procs > 0:
        raise _nonfinite_error(desc, nan, inf, (int(procs), ctx["world_size"]) if ddp else None)
    return loss_sum / max(n, 1), correct / max(n, 1), steps


@torch.no_grad()
def predict_probs(model, loader, *, device, autocast=None, channels_last=False):
    """Class probabilities (N, K) float64 and the true labels (N,) of a non-shuffled loader."""
    model.eval()
    autocast = autocast or contextlib.nullcontext
    probs, targets = [], []
    for x, y in loader:
        with autocast():
            logits = model(to_input(x, device, channels_last))
        probs.append(torch.softmax(logits.double(), dim=1).cpu())
        targets.append(y)
    return torch.cat(probs).numpy(), torch.cat(targets).numpy()


def make_autocast(device, amp):
    if amp and device.type == "cuda":
        return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def lr_at(epoch, *, lr, epochs, usescheduler):
    """Learning rate of an epoch (1-based): constant, or cosine decay from lr over `epochs`
    (computed from the epoch number, so a resumed run with more epochs follows the new schedule)."""
    if not usescheduler:
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(epochs, 1)))


def sync_buffers(model, ctx):
    """Process 0's buffers (BatchNorm running statistics) on every process. DDP broadcasts them
    before each training forward; each process then updates its copy from its own batch."""
    if ctx["ddp"]:
        import torch.distributed as dist

        for b in model.buffers():
            dist.broadcast(b, src=0)


def fit(model, train_loader, val_loader, *, epochs, lr, patience, device, out_dir, ckpt_base, weight_decay=0.01,
        usescheduler=False, amp=False, compile=False, channels_last=False, ctx=None, resume=None, log=print):
    """Train with early stopping on the validation loss; write last.pt every epoch and best.pt on
    every improvement (master process only). `resume` is a checkpoint dict to continue from
    (with "best_state": the weights of the run's best.pt, if known).
    One code path for every combination: the model (channels-last 3d if `channels_last`) is wrapped
    in DDP under torchrun, then torch.compile'd with `compile`; `amp` autocasts to bf16 on CUDA.
    Checkpoints hold the unwrapped model's weights (no "module." / "_orig_mod." prefixes).
    Returns {"history", "best_epoch", "best_val_loss", "best_state", "epochs_run", "stopped_early"}."""
    ctx = ctx or {"ddp": False, "master": True, "local_rank": 0, "rank": 0, "world_size": 1}
    out_dir = Path(out_dir)
    raw = model.to(device, memory_format=torch.channels_last_3d) if channels_last else model.to(device)
    optimizer = torch.optim.AdamW(raw.parameters(), lr=lr, weight_decay=weight_decay)
    history, best_val, best_epoch, bad, start = [], float("inf"), 0, 0, 0
    best_state = None
    if resume is not None:
        raw.load_state_dict(clean_state_dict(resume["model_state"]))
        optimizer.load_state_dict(resume["optimizer_state"])
        history = [dict(h) for h in resume.get("history", [])]
        best_val, best_epoch = resume.get("best_val_loss", float("inf")), resume.get("best_epoch", 0)
        bad, start = resume.get("bad_epochs", 0), int(resume["epoch"])
        best_state = resume.get("best_state")
    net = raw
    if ctx["ddp"]:  # DDP broadcasts process 0's weights and buffers: every process starts from the same model
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:  # after DDP, so that the compiler splits the graph at DDP's gradient buckets
        net = torch.compile(net)
    # evaluation runs the unwrapped model: no collective per batch, so the processes' validation
    # shards may differ in length (or be empty); sync_buffers gives it process 0's BatchNorm statistics
    eval_net = (torch.compile(raw) if compile else raw) if ctx["ddp"] else net
    autocast = make_autocast(device, amp)
    stopped_early = False
    for epoch in range(start + 1, epochs + 1):
        if bad >= patience:
            stopped_early = True
            break
        t0 = time.perf_counter()
        set_loader_epoch(train_loader, epoch)
        cur_lr = lr_at(epoch, lr=lr, epochs=epochs, usescheduler=usescheduler)
        for group in optimizer.param_groups:
            group["lr"] = cur_lr
        tr_loss, tr_acc, steps = run_epoch(net, train_loader, device=device, optimizer=optimizer, autocast=autocast,
                                           ctx=ctx, desc=f"epoch {epoch}/{epochs}", show_progress=ctx["master"],
                                           channels_last=channels_last)
        sync_buffers(raw, ctx)  # validate exactly the model process 0 saves
        va_loss, va_acc, _ = run_epoch(eval_net, val_loader, device=device, autocast=autocast, ctx=ctx,
                                       desc=f"epoch {epoch}/{epochs} val", show_progress=ctx["master"],
                                       channels_last=channels_last)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": tr_loss, "train_acc": tr_acc, "val_loss": va_loss,
                        "val_acc": va_acc, "lr": cur_lr, "steps": steps, "seconds": round(seconds, 3)})
        improved = va_loss < best_val
        if improved:
            best_val, best_epoch, bad = va_loss, epoch, 0
            best_state = clean_state_dict(raw.state_dict())
        else:
            bad += 1
        if ctx["master"]:
            log(f"epoch {epoch}/{epochs} train loss {tr_loss:.4f} acc {tr_acc:.4f} | "
                f"val loss {va_loss:.4f} acc {va_acc:.4f} | {seconds:.1f} s" + (" *" if improved else ""))
            state = {**ckpt_base, "model_state": clean_state_dict(raw.state_dict()), "epoch": epoch,
                     "optimizer_state": optimizer.state_dict(),
                     "history": [dict(h) for h in history], "best_val_loss": float(best_val),
                     "best_epoch": int(best_epoch), "bad_epochs": int(bad), "patience": int(patience)}
            if improved:
                save_checkpoint(out_dir / "best.pt", state)
            save_checkpoint(out_dir / "last.pt", state)
        if bad >= patience and epoch < epochs:
            stopped_early = True
            if ctx["master"]:
                log(f"early stop: no lower validation loss for {patience} epochs (best epoch {best_epoch})")
            break
    if best_state is None:
        best_state = clean_state_dict(raw.state_dict())
    return {"history": history, "best_epoch": best_epoch, "best_val_loss": best_val, "best_state": best_state,
            "epochs_run": len(history), "stopped_early": stopped_early}


# ----------------------------------------------------------------------------- results

def compute_metrics(y_true, probs, classes):
    """scikit-learn metrics of class probabilities (N, K) against true labels.
    Two classes: precision/recall/f1 of the second class (classes[1]) and its ROC AUC;
    more: macro averages and macro one-vs-rest ROC AUC. roc_auc is None if the test set has one class."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    average = "binary" if len(classes) == 2 else "macro"
    prf = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0,
                                              **({"pos_label": 1} if average == "binary" else {}))
    roc_auc = None
    if len(set(y_true.tolist())) >= 2:
        try:
            if len(classes) == 2:
                roc_auc = float(skm.roc_auc_score(y_true, probs[:, 1]))
            else:
                roc_auc = float(skm.roc_auc_score(y_true, probs / probs.sum(1, keepdims=True), multi_class="ovr",
                                                  average="macro", labels=labels))
        except ValueError:
            roc_auc = None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced accuracy warns when a predicted class is absent
        balanced = float(skm.balanced_accuracy_score(y_true, y_pred))
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced,
        "precision": float(prf[0]),
        "recall": float(prf[1]),
        "f1": float(prf[2]),
        "roc_auc": roc_auc,
        "average": average,
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }


def write_json(path, obj):
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def write_csv(path, header, rows):
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def write_history(path, history):
    keys = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "steps", "seconds"]
    write_csv(path, keys, [[h.get(k) for k in keys] for h in history])


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path):
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)


def plot_curves(history, path):
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    b.plot(ep, [h["train_acc"] for h in history], "o-", label="train")
    b.plot(ep, [h["val_acc"] for h in history], "o-", label="validation")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure(fig, path)


def plot_confusion(cm, classes, path):
    plt = _pyplot()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2.5))
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    _save_figure(fig, path)


def plot_roc(y_true, scores, positive, path):
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fpr, tpr, _ = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, scores):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (positive: {positive})")
    ax.legend(loc="lower right")
    _save_figure(fig, path)


def write_test_results(out_dir, *, paths, y_true, probs, classes):
    """test_predictions.csv, confusion.png, roc.png (two classes, both present); returns the metrics."""
    out_dir = Path(out_dir)
    m = compute_metrics(y_true, probs, classes)
    pred = probs.argmax(axis=1)
    write_csv(out_dir / "test_predictions.csv", ["path", "true", "predicted", *[f"p_{c}" for c in classes]],
              [[str(p), classes[t], classes[k], *[f"{v:.6f}" for v in row]]
               for p, t, k, row in zip(paths, y_true, pred, probs)])
    plot_confusion(m["confusion_matrix"], classes, out_dir / "confusion.png")
    if len(classes) == 2 and m["roc_auc"] is not None:
        plot_roc(y_true, probs[:, 1], classes[1], out_dir / "roc.png")
    return m


# ----------------------------------------------------------------------------- main

@interruptible
def main(args):
    """Train per `args` (see get_args_parser); returns the exit status: 0, or 1 if the loss became
    nan/inf. Bad arguments or data exit 2 (SystemExit) with one line; Ctrl-C returns 130."""
    data_path = Path(args.data)
    if not data_path.exists():
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
        ctx = setup_distributed(args.device)
    except ValueError as e:
        usage_error(str(e))
    device = ctx["device"]
    log = print if ctx["master"] else (lambda *a, **k: None)
    try:
        _train(args, ctx, device, val_size, log)
    except FloatingPointError as e:  # raised on every process together (see run_epoch): one message
        if ctx["master"]:
            print(f"error: training stopped: {e}", file=sys.stderr)
        return 1
    finally:
        teardown_distributed(ctx)
    return 0


def _train(args, ctx, device, val_size, log):
    resume = None
    resume_best = Path(args.resume).parent / "best.pt" if args.resume else None  # the resumed run's best.pt
    learnmethod, frames, size, lr, seed, test_size = (args.learnmethod, args.frames, args.size, args.lr, args.seed,
                                                      args.test_size)
    if args.resume:
        try:
            resume = load_checkpoint(args.resume)
        except Exception as e:
            usage_error(f"--resume {args.resume}: {error_summary(e)}")
        ta = resume["train_args"]  # the split and recipe must match the run being continued
        learnmethod, frames, size, lr = resume["model"], resume["frames"], resume["size"], resume["lr"]
        seed, test_size, val_size = ta["seed"], ta["test_size"], ta["val_size"]
        if learnmethod != args.learnmethod:
            log(f"note: --resume continues a {learnmethod} run; --learnmethod {args.learnmethod} ignored")
        if resume_best.is_file():
            resume["best_state"] = load_checkpoint(resume_best)["model_state"]
    if args.amp and device.type != "cuda":
        log("note: --amp applies on CUDA only; training in float32")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(seed)
    try:
        data = prepare_data(args.data, test_size=test_size, val_size=val_size, seed=seed, frames=frames, size=size,
                            num_workers=args.num_workers,
                            stats=(resume["mean"], resume["std"]) if resume else None, ctx=ctx)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        usage_error(str(e))
    if resume and data["classes"] != resume["classes"]:
        usage_error(f"--resume: the checkpoint's classes {resume['classes']} differ from the data's {data['classes']}")

    out_dir = Path(args.out) if args.out else (
        Path(args.resume).parent if args.resume else
        Path("runs") / f"{learnmethod}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    if ctx["master"]:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_best is not None and resume_best.is_file() and not (out_dir / "best.pt").exists():
            with atomic_output(out_dir / "best.pt") as tmp:
                shutil.copyfile(resume_best, tmp)
    barrier(ctx)

    layout = INPUT_LAYOUT[learnmethod]
    pin = device.type == "cuda"
    channels_last = use_channels_last(learnmethod, device)
    train_ds = subset(data, "train", frames=frames, size=size, layout=layout)
    val_ds = subset(data, "val", frames=frames, size=size, layout=layout)
    test_ds = subset(data, "test", frames=frames, size=size, layout=layout)
    loader_kw = dict(batch_size=args.batch_size, seed=seed, num_workers=args.num_workers, ctx=ctx, pin_memory=pin)
    train_loader = make_loader(train_ds, shuffle=True, **loader_kw)
    val_loader = make_loader(val_ds, shuffle=False, **loader_kw)
    C = len(data["info"]["channels"])
    model_kwargs = {"in_channels": C, "num_classes": len(data["classes"]), "frames": frames, "size": size}
    train_args = {"seed": seed, "test_size": test_size, "val_size": val_size, "batch_size": args.batch_size,
                  "patience": args.patience, "usescheduler": args.usescheduler, "weight_decay": args.weight_decay,
                  "data": str(args.data)}
    log(f"{learnmethod}: {len(data['train'])} train / {len(data['val'])} val / {len(data['test'])} test files, "
        f"classes {data['classes']}, channels {data['info']['channels']}, device {device}")

    def one_run(run_lr, run_dir, resume_ckpt=None):
        seed_everything(seed)
        model = build_model(learnmethod, **model_kwargs)  # the same initial weights on every process
        if ctx["rank"] > 0:  # but each process draws its own dropout masks (process 0 as a plain run)
            torch.manual_seed(seed + ctx["rank"])
        base = checkpoint_base(learnmethod=learnmethod, model_kwargs=model_kwargs, data=data, frames=frames,
                               size=size, lr=run_lr, train_args=train_args)
        if ctx["master"]:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        return model, fit(model, train_loader, val_loader, epochs=args.epochs, lr=run_lr, patience=args.patience,
                          device=device, out_dir=run_dir, ckpt_base=base, weight_decay=args.weight_decay,
                          usescheduler=args.usescheduler, amp=args.amp, compile=args.compile,
                          channels_last=channels_last, ctx=ctx, resume=resume_ckpt, log=log)

    if args.islearnrate_search and resume is None:
        rows, best = [], None
        for run_lr in args.lr_grid:
            log(f"--- learning rate {run_lr:g}")
            run_dir = out_dir / "lr_search" / f"lr_{run_lr:g}"
            model, result = one_run(run_lr, run_dir)
            rows.append([f"{run_lr:g}", result["best_val_loss"], result["best_epoch"], result["epochs_run"]])
            if best is None or result["best_val_loss"] < best[2]["best_val_loss"]:
                best = (run_lr, model, result, run_dir)
        lr, model, result, run_dir = best
        if ctx["master"]:
            write_csv(out_dir / "lr_search.csv", ["lr", "best_val_loss", "best_epoch", "epochs_run"], rows)
            for name in ("best.pt", "last.pt"):
                with atomic_output(out_dir / name) as tmp:
                    shutil.copyfile(run_dir / name, tmp)
            log(f"learning rate search: best lr {lr:g} (validation loss {result['best_val_loss']:.4f})")
    else:
        model, result = one_run(lr, out_dir, resume)

    metrics = None
    if ctx["master"]:
        write_history(out_dir / "history.csv", result["history"])
        plot_curves(result["history"], out_dir / "curves.png")
        model.load_state_dict(result["best_state"])
        model.to(device)
        test_loader = make_loader(test_ds, shuffle=False, batch_size=args.batch_size, seed=seed,
                                  num_workers=args.num_workers, pin_memory=pin)
        probs, y_true = predict_probs(model, test_loader, device=device, autocast=make_autocast(device, args.amp),
                                      channels_last=channels_last)
        metrics = write_test_results(out_dir, paths=test_ds.paths, y_true=y_true, probs=probs,
                                     classes=data["classes"])
        metrics.update({"n_train": len(data["train"]), "n_val": len(data["val"]), "n_test": len(data["test"]),
                        "learnmethod": learnmethod, "lr": float(lr), "best_epoch": int(result["best_epoch"]),
                        "best_val_loss": float(result["best_val_loss"]), "epochs_run": result["epochs_run"],
                        "frames": frames, "size": size, "seed": seed})
        write_json(out_dir / "metrics.json", metrics)
        log(f"test: accuracy {metrics['accuracy']:.4f}  balanced accuracy {metrics['balanced_accuracy']:.4f}  "
            f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  f1 {metrics['f1']:.4f}  "
            f"roc auc {'n/a' if metrics['roc_auc'] is None else format(metrics['roc_auc'], '.4f')}")
        log(f"confusion matrix (rows true, columns predicted; {data['classes']}): {metrics['confusion_matrix']}")
        log(f"wrote {out_dir}")
    barrier(ctx)
    return metrics


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
