"""Seeded training order and loaders, the same for plain and DDP runs.

    seed_everything(0)
    loader = make_loader(ds, batch_size=8, shuffle=True, seed=0, num_workers=default_workers(), ctx=ctx)
    set_loader_epoch(loader, epoch)   # before each epoch: its order depends on the epoch alone
    state = rng_state(); ...; set_rng_state(state)   # what a resumed run continues from
"""
import math
import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state():
    """This process's random-number states (Python, numpy, torch's CPU generator and that of its current
    GPU: the one it trains on, also under DDP) as plain values and tensors, so a checkpoint holds them
    and torch.load(weights_only=True) reads them back."""
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = torch.from_numpy(np_state["state"]["key"].astype(np.int64))
    return {"python": random.getstate(), "numpy": np_state, "torch": torch.get_rng_state(),
            "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_initialized() else []}


def set_rng_state(state):
    """Restore what rng_state() returned (the GPU's state only where a GPU is in use)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"], state=dict(state["numpy"]["state"]))
    np_state["state"]["key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_initialized():
        torch.cuda.set_rng_state(state["cuda"][0])


MAX_WORKERS = 16  # beyond this, reading cached small clips gains nothing and every worker costs memory


def default_workers():
    """DataLoader workers per process: the cores this process may run on, shared by torchrun's processes on
    this machine (LOCAL_WORLD_SIZE), at least 1 and at most MAX_WORKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def seed_worker(worker_id):
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


class ShardedShuffleSampler(torch.utils.data.Sampler):
    """The training order of every run, plain (num_replicas=1) or DDP (one per process).

    Each epoch is one permutation of the n items, the same on every process (seeded with
    seed + epoch: call set_epoch); process `rank` of `num_replicas` takes its positions rank,
    rank + num_replicas, ... (like torch's DistributedSampler, padded by repeating the first items so
    every process takes ceil(n / num_replicas) items and the same number of steps). Hence the items
    of DDP step k united over the processes are exactly the plain run's batch k when the plain
    --batch_size is num_replicas x the per-process one and n is a multiple of num_replicas
    (otherwise the last DDP step also holds the padding repeats). make_loader drops a last step that
    would give each process a single item (BatchNorm cannot train on one clip): a plain run's last
    batch of one item, which keeps the equivalence; but also a DDP last step of one item per process
    when the plain run's last batch holds 2 to num_replicas items, where the equivalence ends.
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
    process under DDP (`ctx`, a DistContext), so the two sample alike (see there); a last batch of one
    item (per process) is dropped, never the only one: that item, the epoch's last, changes with the
    epoch. Its worker processes start afresh every epoch, seeded from the epoch's generator, so the
    random augmentation they draw depends on (seed, epoch, rank) alone and a resumed run draws the same
    (persistent workers would carry their random state over from the first epoch). Evaluation under
    DDP: a strided shard per process, each item exactly once over all processes (no padding
    duplicates), so metrics summed over processes cover every file once."""
    ddp = ctx is not None and ctx.ddp
    world, rank = (ctx.world_size, ctx.rank) if ddp else (1, 0)
    sampler, drop_last = None, False
    if shuffle:
        sampler = ShardedShuffleSampler(len(dataset), num_replicas=world, rank=rank, seed=seed)
        # the same on every process: each takes len(sampler) items
        drop_last = len(sampler) % batch_size == 1 and len(sampler) > batch_size
    elif ddp:
        sampler = list(range(rank, len(dataset), world))
    gen = torch.Generator()
    gen.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, sampler=sampler, drop_last=drop_last,
                        num_workers=num_workers, pin_memory=pin_memory, generator=gen, worker_init_fn=seed_worker,
                        persistent_workers=num_workers > 0 and not shuffle)
    loader.seed, loader.rank = seed, rank
    return loader


def set_loader_epoch(loader, epoch):
    """Same shuffling and the same random draws for an epoch whether or not the run was resumed. The workers'
    seeds also depend on the process: under DDP each process augments its clips with its own draws (process 0
    as a plain run), not the same crops and flips as every other process."""
    if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    # rank << 20: 2**20 epochs apart, within the 32 bits of its seed torch's CPU generator keeps
    loader.generator.manual_seed(loader.seed + epoch + (getattr(loader, "rank", 0) << 20))
