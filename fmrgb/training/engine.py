"""The epoch loop: training and validation passes, early stopping, checkpoints, test probabilities.

    run = Execution(device, amp=True, channels_last=use_channels_last("conv3d", device))
    plan = Optimisation(lr=1e-3, epochs=20, patience=5)
    result = fit(model, train_loader, val_loader, plan, run, out_dir="run", recipe=recipe, ctx=ctx)  # FitResult
    model.load_state_dict(result.best_state)
    probs, y_true = predict_probs(model, test_loader, run)

Every function here takes a DistContext (fmrgb.training.distributed) and behaves the same with and without
DDP: losses and accuracies are summed over the processes, and only process 0 logs and saves.
"""
import contextlib
import dataclasses
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fmrgb.training.checkpoint import Checkpoint, Progress, clean_state_dict, save
from fmrgb.training.distributed import DistContext, gather_object, sync_buffers
from fmrgb.training.sampling import rng_state, set_loader_epoch, set_rng_state


@dataclasses.dataclass(frozen=True)
class Execution:
    """Where and how the model runs: the device; bf16 autocast (`amp`, on CUDA only); channels-last 3d memory
    (see use_channels_last); `normalise`, for loaders of uint8 clips, their normalisation on the device (the
    dataset's normaliser); `compile`: torch.compile the training model (fit)."""
    device: torch.device
    amp: bool = False
    channels_last: bool = False
    normalise: Any = None
    compile: bool = False

    def autocast(self):
        if self.amp and self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def input(self, x):
        """A batch on the device (an asynchronous copy from pinned memory), normalised there, in channels-last 3d
        if so set."""
        x = x.to(self.device, non_blocking=True)
        if self.normalise is not None:
            x = self.normalise(x)
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x


def fast_kernels(device):
    """On CUDA: TF32 matrix products and convolutions, and cuDNN's fastest convolution for the run's fixed shapes."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed input shapes: the fastest convolution, chosen once


def use_channels_last(learnmethod, device):
    """Conv3D on CUDA runs its cuDNN convolutions in channels-last 3d (NDHWC) memory format, the
    tensor-core layout (faster with and without --amp); other models and the CPU keep the default."""
    return device.type == "cuda" and learnmethod == "conv3d"


@dataclasses.dataclass(frozen=True)
class Optimisation:
    """How the model is optimised: AdamW at `lr` with `weight_decay`, for `epochs` (total, also when resuming),
    stopping after `patience` epochs without a lower validation loss; `usescheduler`: cosine decay over the
    epochs; `lr_factors` ({parameter name: factor}, 1 for the others) scales a parameter's learning rate, e.g.
    0.1 for a pretrained backbone's layers; `no_decay` names the parameters kept out of the weight decay
    (no_decay_names). One optimizer group per (factor, decayed or not), so a resumed run must pass the same;
    `class_weights` weigh each class in the training and validation losses."""
    lr: float
    epochs: int
    patience: int
    weight_decay: float = 0.01
    usescheduler: bool = False
    lr_factors: Any = None
    no_decay: frozenset = frozenset()
    class_weights: Any = None    # a loss weight per class (class_weights), None: all 1

    def loss_weight(self, device):
        return None if self.class_weights is None else torch.tensor(self.class_weights, dtype=torch.float32,
                                                                    device=device)

    def lr_at(self, epoch):
        """Learning rate of an epoch (1-based): constant, or cosine decay from lr over `epochs`
        (computed from the epoch number, so a resumed run with more epochs follows the new schedule)."""
        if not self.usescheduler:
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(self.epochs, 1)))


def class_weights(mode, labels, n_classes):
    """--class_weight: None for "none"; for "balanced", n / (K x the class's count) per class of the training
    labels, so that every class weighs as much in the loss as in a balanced set (scikit-learn's "balanced")."""
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    return tuple(float(len(labels) / (n_classes * max(c, 1))) for c in counts)


def _nonfinite_error(desc, nan, step, procs=None):
    where = f" (on {procs[0]} of {procs[1]} processes)" if procs else ""
    return FloatingPointError(f"{desc}: the loss became {'nan' if nan else 'inf'} at step {step}{where}; "
                              "try a lower --lr")


NEVER = 2**62  # "no step had a non-finite loss" (exact in float64, where the processes' numbers meet)


@dataclasses.dataclass(frozen=True)
class Epoch:
    """One pass: mean loss and accuracy (over every process), optimizer steps, and the seconds this
    process waited for its next batch."""
    loss: float
    acc: float
    steps: int
    data_s: float


def run_epoch(model, loader, run, *, optimizer=None, ctx=None, desc="", show_progress=False, weight=None):
    """One pass over `loader` with the model run as `run` (an Execution), training if `optimizer` is given ->
    Epoch (the cross-entropy weighted per class by `weight`, a tensor on the device, if given), its loss and
    accuracy summed over all DDP processes in the same order on each, so every process holds
    the same numbers and takes the same early-stopping decision. Nothing waits for the device during the pass:
    loss, accuracy and the first step with a non-finite loss are kept on the device and read once at the end. A
    non-finite loss then raises FloatingPointError on every process together, naming the processes where it
    appeared first (under DDP a training step's gradient all-reduce has carried it to all the others;
    evaluation, whose processes may take different numbers of batches, has no collective per batch)."""
    from tqdm import tqdm

    ddp = ctx is not None and ctx.ddp
    training = optimizer is not None
    model.train(training)
    device = run.device
    sums = torch.zeros(2, dtype=torch.float64, device=device)    # loss * n, correct
    first_bad = torch.full((), NEVER, dtype=torch.int64, device=device)  # the first step with a nan/inf loss
    nan_first = torch.zeros((), dtype=torch.bool, device=device)        # and whether that loss was nan
    steps = n_total = 0
    data_s, start = 0.0, time.perf_counter()
    bar = tqdm(total=len(loader), desc=desc, leave=False, disable=None if show_progress else True,
               file=sys.stderr, unit="batch")
    batches = iter(loader)
    with torch.set_grad_enabled(training), bar:
        for step in itertools.count(1):
            wait = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                break
            data_s += time.perf_counter() - wait
            x = run.input(x)
            y = y.to(device, non_blocking=True)
            with run.autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=weight)
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
            n_total += n
            loss = loss.detach()
            sums += torch.stack([loss.double().nan_to_num() * n, (logits.argmax(1) == y).sum().double()])
            newly = ~loss.isfinite() & (first_bad == NEVER)
            first_bad = torch.where(newly, step, first_bad)
            nan_first = torch.where(newly, loss.isnan(), nan_first)
            bar.update()
            bar.set_postfix_str(f"data {data_s / (time.perf_counter() - start):.0%}", refresh=False)
    mine = torch.cat([sums, torch.tensor([n_total], dtype=torch.float64, device=device),
                      torch.stack([first_bad.double(), nan_first.double()])])
    if ddp:  # every process's numbers on every process, added up in rank order: the same floats everywhere
        import torch.distributed as dist

        every = [torch.empty_like(mine) for _ in range(ctx.world_size)]
        dist.all_gather(every, mine)
        every = torch.stack(every)
    else:
        every = mine.view(1, -1)
    every = every.cpu()  # the one wait for the device in this pass
    loss_sum, correct, n = every[:, :3].sum(0).tolist()
    first = int(every[:, 3].min())
    if first != NEVER:
        starters = every[:, 3] == first
        nan = bool(every[starters, 4].sum() > 0)
        raise _nonfinite_error(desc, nan, first, (int(starters.sum()), ctx.world_size) if ddp else None)
    return Epoch(loss_sum / max(n, 1), correct / max(n, 1), steps, data_s)


@torch.no_grad()
def predict_probs(model, loader, run, *, ctx=None):
    """Class probabilities (N, K) float64 and the true labels (N,) of a non-shuffled loader, the model run as
    `run` (an Execution). Under DDP (`ctx`) with make_loader's strided evaluation shards: every process
    predicts its share and process 0 gets the whole, in the dataset's order ((None, None) on the others)."""
    model.eval()
    probs, targets = [], []
    for x, y in loader:
        with run.autocast():
            logits = model(run.input(x))
        probs.append(torch.softmax(logits.double(), dim=1).cpu())
        targets.append(y)
    mine = (torch.cat(probs).numpy(), torch.cat(targets).numpy()) if probs else None
    if ctx is None or not ctx.ddp:
        return mine
    shares = gather_object(mine, ctx)
    if not ctx.master:
        return None, None
    n, k = sum(len(s[1]) for s in shares if s), next(s[0].shape[1] for s in shares if s)
    p_all, y_all = np.empty((n, k)), np.empty(n, dtype=shares[0][1].dtype)
    for r, share in enumerate(shares):  # process r predicted items r, r + world, r + 2 world, ...
        if share:
            p_all[r::ctx.world_size], y_all[r::ctx.world_size] = share
    return p_all, y_all


class _Started:
    """A loader's pass of `epoch`, its iterator made now: DataLoader workers start when it is made. The same
    items and random draws as making it later: they depend on the loader's seed and the epoch alone."""

    def __init__(self, loader, epoch):
        set_loader_epoch(loader, epoch)
        self.loader, self.iterator = loader, iter(loader)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        return self.iterator


@dataclasses.dataclass(frozen=True)
class FitResult:
    history: list           # one dict per epoch (epoch, train_loss, ..., lr, steps, seconds, data_s)
    best_epoch: int
    best_val_loss: float
    best_state: dict        # the weights of the lowest validation loss, on the CPU, without wrapper prefixes
    epochs_run: int
    stopped_early: bool


NORM_LAYERS = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm)


def no_decay_names(model):
    """The names of the parameters weight decay leaves alone, as fine-tuning practice has it: every parameter of
    a normalisation layer (BatchNorm, LayerNorm, GroupNorm, InstanceNorm) and every bias. Decaying a norm's
    scale towards 0 or a bias towards 0 only fights what they must learn; they cannot overfit as filters do."""
    names = {f"{m_name}.{p_name}".lstrip(".") for m_name, m in model.named_modules() if isinstance(m, NORM_LAYERS)
             for p_name, _ in m.named_parameters(recurse=False)}
    # "bias", and attention's "in_proj_bias"
    return frozenset(names | {name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1].endswith("bias")})


def param_groups(model, lr_factors=None, no_decay=frozenset()):
    """AdamW groups, one per learning-rate factor (in decreasing order) and, within it, the decayed parameters
    then those in `no_decay` (weight_decay 0), each with its "lr_factor"; empty groups left out (so without
    `no_decay` exactly the one group per factor of a checkpoint made before it)."""
    factors = {name: float((lr_factors or {}).get(name, 1.0)) for name, _ in model.named_parameters()}
    groups = []
    for f in sorted(set(factors.values()), reverse=True):
        for off in (False, True):
            params = [p for name, p in model.named_parameters() if factors[name] == f and (name in no_decay) == off]
            if params:
                groups.append({"params": params, "lr_factor": f, **({"weight_decay": 0.0} if off else {})})
    return groups


def fit(model, train_loader, val_loader, plan, run, *, out_dir, recipe, ctx=None, resume=None):
    """Train as `plan` (an Optimisation) says, the model run as `run` (an Execution), with early stopping on the
    validation loss; write last.pt every epoch and best.pt on every improvement (process 0 only), each a
    Checkpoint of `recipe`. `resume` (a checkpoint.Resume) is a run to continue; its random-number states (saved
    per process after every epoch) are restored, so a resumed run repeats the uninterrupted one.
    One code path for every combination: the model (channels-last 3d if so run) is wrapped in DDP under
    torchrun, then torch.compile'd if so run. Checkpoints hold the unwrapped model's weights (no "module." /
    "_orig_mod." prefixes). On CUDA AdamW runs fused (one kernel for all parameters). history's data_s: the
    seconds process 0's training loop waited for its next batch in that epoch (beside the epoch's `seconds`)."""
    ctx = ctx or DistContext(device=run.device)
    out_dir, device = Path(out_dir), run.device
    raw = model.to(device, memory_format=torch.channels_last_3d) if run.channels_last else model.to(device)
    groups = param_groups(raw, plan.lr_factors, plan.no_decay)
    optimizer = torch.optim.AdamW(groups, lr=plan.lr, weight_decay=plan.weight_decay,
                                  fused=device.type == "cuda")
    progress, best_state = Progress(epoch=0, optimizer_state={}), None
    if resume is not None:
        progress, best_state = resume.checkpoint.progress, resume.best_state
        raw.load_state_dict(clean_state_dict(resume.checkpoint.model_state))
        optimizer.load_state_dict(progress.optimizer_state)
        if ctx.rank < len(progress.rng_state):  # a checkpoint of another world size: the processes it knew
            set_rng_state(progress.rng_state[ctx.rank])
    history = [dict(h) for h in progress.history]
    best_val, best_epoch, bad = progress.best_val_loss, progress.best_epoch, progress.bad_epochs
    net, eval_net = _wrapped(raw, run, ctx)
    weight = plan.loss_weight(device)
    stopped_early, ahead = False, None
    for epoch in range(progress.epoch + 1, plan.epochs + 1):
        if bad >= plan.patience:
            stopped_early = True
            break
        t0 = time.perf_counter()
        cur_lr = plan.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = cur_lr * group.get("lr_factor", 1.0)  # a checkpoint of an older version has none
        tr = run_epoch(net, ahead or _Started(train_loader, epoch), run, optimizer=optimizer, ctx=ctx,
                       desc=f"epoch {epoch}/{plan.epochs}", show_progress=ctx.master, weight=weight)
        # the next epoch's workers start (and fetch its first batches) while this one validates
        ahead = _Started(train_loader, epoch + 1) if epoch < plan.epochs else None
        sync_buffers(raw, ctx)  # validate exactly the model process 0 saves
        va = run_epoch(eval_net, val_loader, run, ctx=ctx, desc=f"epoch {epoch}/{plan.epochs} val",
                       show_progress=ctx.master, weight=weight)
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": tr.loss, "train_acc": tr.acc, "val_loss": va.loss,
                        "val_acc": va.acc, "lr": cur_lr, "steps": tr.steps, "seconds": round(seconds, 3),
                        "data_s": round(tr.data_s, 3)})
        improved = va.loss < best_val
        if improved:
            best_val, best_epoch, bad = va.loss, epoch, 0
            best_state = clean_state_dict(raw.state_dict())
        else:
            bad += 1
        states = gather_object(rng_state(), ctx)  # every process's, where epoch `epoch + 1` starts
        if ctx.master:
            ctx.log(f"epoch {epoch}/{plan.epochs} train loss {tr.loss:.4f} acc {tr.acc:.4f} | "
                    f"val loss {va.loss:.4f} acc {va.acc:.4f} | {seconds:.1f} s, waiting for data {tr.data_s:.1f} s"
                    + (" *" if improved else ""))
            state = Checkpoint(recipe, clean_state_dict(raw.state_dict()), Progress(
                epoch, optimizer.state_dict(), tuple(history), best_val, best_epoch, bad, int(plan.patience), states))
            if improved:
                save(out_dir / "best.pt", state)
            save(out_dir / "last.pt", state)
        if bad >= plan.patience and epoch < plan.epochs:
            stopped_early = True
            ctx.log(f"early stop: no lower validation loss for {plan.patience} epochs (best epoch {best_epoch})")
            break
    if best_state is None:
        best_state = clean_state_dict(raw.state_dict())
    return FitResult(history=history, best_epoch=best_epoch, best_val_loss=best_val, best_state=best_state,
                     epochs_run=len(history), stopped_early=stopped_early)


def _wrapped(raw, run, ctx):
    """(the training model, the evaluation model) of the model `raw` on its device."""
    net = raw
    if ctx.ddp:  # DDP broadcasts process 0's weights and buffers: every process starts from the same model
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    if run.compile:  # after DDP, so that the compiler splits the graph at DDP's gradient buckets
        net = torch.compile(net)
    # evaluation runs the unwrapped model: no collective per batch, so the processes' validation
    # shards may differ in length (or be empty); sync_buffers gives it process 0's BatchNorm statistics
    eval_net = (torch.compile(raw) if run.compile else raw) if ctx.ddp else net
    return net, eval_net
