"""The epoch loop: training and validation passes, early stopping, checkpoints, test probabilities.

    result = fit(model, train_loader, val_loader, epochs=20, lr=1e-3, patience=5, device=device,
                 out_dir="run", ckpt_base=base, ctx=ctx)      # -> FitResult
    model.load_state_dict(result.best_state)
    probs, y_true = predict_probs(model, test_loader, device=device)

Every function here takes a DistContext (fmrgb.distributed) and behaves the same with and without
DDP: losses and accuracies are summed over the processes, and only process 0 logs and saves.
"""
import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fmrgb.checkpoint import clean_state_dict, save_checkpoint
from fmrgb.distributed import DistContext, gather_object, sync_buffers
from fmrgb.sampling import rng_state, set_loader_epoch, set_rng_state


def to_input(x, device, channels_last=False):
    """A batch on `device` (channels-last 3d for Conv3D on CUDA: see use_channels_last)."""
    if channels_last:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last_3d)
    return x.to(device, non_blocking=True)


def use_channels_last(learnmethod, device):
    """Conv3D on CUDA runs its cuDNN convolutions in channels-last 3d (NDHWC) memory format, the
    tensor-core layout (faster with and without --amp); other models and the CPU keep the default."""
    return device.type == "cuda" and learnmethod == "conv3d"


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

    ddp = ctx is not None and ctx.ddp
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
                    raise _nonfinite_error(desc, nan, inf, (int(procs), ctx.world_size))
            elif not ddp and bad.sum() > 0:
                raise _nonfinite_error(desc, *bad.tolist())
            if training:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                try:
                    optimizer.step()
                except RuntimeError as e:  # AdamW's step size (lr / bias correction) beyond float range
                    if "overflow" not in str(e):
                        raise
                    raise FloatingPointError(f"{desc}: the optimizer step overflowed ({e}); try a lower --lr") from None
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
        raise _nonfinite_error(desc, nan, inf, (int(procs), ctx.world_size) if ddp else None)
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


@dataclasses.dataclass(frozen=True)
class FitResult:
    history: list           # one dict per epoch (epoch, train_loss, train_acc, val_loss, val_acc, lr, steps, seconds)
    best_epoch: int
    best_val_loss: float
    best_state: dict        # the weights of the lowest validation loss, on the CPU, without wrapper prefixes
    epochs_run: int
    stopped_early: bool


def param_groups(model, lr_factors=None):
    """AdamW groups, one per learning-rate factor (in decreasing order), each with its "lr_factor"."""
    factors = {name: float((lr_factors or {}).get(name, 1.0)) for name, _ in model.named_parameters()}
    return [{"params": [p for name, p in model.named_parameters() if factors[name] == f], "lr_factor": f}
            for f in sorted(set(factors.values()), reverse=True)]


def fit(model, train_loader, val_loader, *, epochs, lr, patience, device, out_dir, ckpt_base, weight_decay=0.01,
        usescheduler=False, amp=False, compile=False, channels_last=False, ctx=None, resume=None, lr_factors=None):
    """Train with early stopping on the validation loss; write last.pt every epoch and best.pt on
    every improvement (process 0 only). `resume` is a checkpoint dict to continue from
    (with "best_state": the weights of the run's best.pt, if known); its random-number states (saved
    per process after every epoch) are restored, so a resumed run repeats the uninterrupted one.
    One code path for every combination: the model (channels-last 3d if `channels_last`) is wrapped
    in DDP under torchrun, then torch.compile'd with `compile`; `amp` autocasts to bf16 on CUDA.
    Checkpoints hold the unwrapped model's weights (no "module." / "_orig_mod." prefixes).
    `lr_factors` ({parameter name: factor}, 1 for the others) scales a parameter's learning rate, e.g. 0.1
    for a pretrained backbone's layers; one optimizer group per factor, so a resumed run must pass the same."""
    ctx = ctx or DistContext(device=device)
    out_dir = Path(out_dir)
    raw = model.to(device, memory_format=torch.channels_last_3d) if channels_last else model.to(device)
    optimizer = torch.optim.AdamW(param_groups(raw, lr_factors), lr=lr, weight_decay=weight_decay)
    history, best_val, best_epoch, bad, start = [], float("inf"), 0, 0, 0
    best_state = None
    if resume is not None:
        raw.load_state_dict(clean_state_dict(resume["model_state"]))
        optimizer.load_state_dict(resume["optimizer_state"])
        history = [dict(h) for h in resume.get("history", [])]
        best_val, best_epoch = resume.get("best_val_loss", float("inf")), resume.get("best_epoch", 0)
        bad, start = resume.get("bad_epochs", 0), int(resume["epoch"])
        best_state = resume.get("best_state")
        states = resume.get("rng_state") or []
        if ctx.rank < len(states):  # a checkpoint of another world size: the processes it knew
            set_rng_state(states[ctx.rank])
    net = raw
    if ctx.ddp:  # DDP broadcasts process 0's weights and buffers: every process starts from the same model
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:  # after DDP, so that the compiler splits the graph at DDP's gradient buckets
        net = torch.compile(net)
    # evaluation runs the unwrapped model: no collective per batch, so the processes' validation
    # shards may differ in length (or be empty); sync_buffers gives it process 0's BatchNorm statistics
    eval_net = (torch.compile(raw) if compile else raw) if ctx.ddp else net
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
            group["lr"] = cur_lr * group.get("lr_factor", 1.0)  # a checkpoint of an older version has none
        tr_loss, tr_acc, steps = run_epoch(net, train_loader, device=device, optimizer=optimizer, autocast=autocast,
                                           ctx=ctx, desc=f"epoch {epoch}/{epochs}", show_progress=ctx.master,
                                           channels_last=channels_last)
        sync_buffers(raw, ctx)  # validate exactly the model process 0 saves
        va_loss, va_acc, _ = run_epoch(eval_net, val_loader, device=device, autocast=autocast, ctx=ctx,
                                       desc=f"epoch {epoch}/{epochs} val", show_progress=ctx.master,
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
        states = gather_object(rng_state(), ctx)  # every process's, where epoch `epoch + 1` starts
        if ctx.master:
            ctx.log(f"epoch {epoch}/{epochs} train loss {tr_loss:.4f} acc {tr_acc:.4f} | "
                    f"val loss {va_loss:.4f} acc {va_acc:.4f} | {seconds:.1f} s" + (" *" if improved else ""))
            state = {**ckpt_base, "model_state": clean_state_dict(raw.state_dict()), "epoch": epoch,
                     "optimizer_state": optimizer.state_dict(),
                     "history": [dict(h) for h in history], "best_val_loss": float(best_val),
                     "best_epoch": int(best_epoch), "bad_epochs": int(bad), "patience": int(patience),
                     "rng_state": states}
            if improved:
                save_checkpoint(out_dir / "best.pt", state)
            save_checkpoint(out_dir / "last.pt", state)
        if bad >= patience and epoch < epochs:
            stopped_early = True
            ctx.log(f"early stop: no lower validation loss for {patience} epochs (best epoch {best_epoch})")
            break
    if best_state is None:
        best_state = clean_state_dict(raw.state_dict())
    return FitResult(history=history, best_epoch=best_epoch, best_val_loss=best_val, best_state=best_state,
                     epochs_run=len(history), stopped_early=stopped_early)
