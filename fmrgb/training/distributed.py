"""Process-group facts for training: one process, or one per GPU (or CPU worker) under torchrun.

    with process_group("auto") as ctx:    # DistContext; DDP when torchrun set RANK/WORLD_SIZE
        ctx.log("printed once")           # silent on every process but rank 0
        barrier(ctx)                      # a no-op without DDP, like every helper here

Only process 0 (`ctx.master`) prints and writes files; the others train alongside it. Work that
takes long (the statistics and cache pass, the test evaluation) is shared by every process, and
the group waits up to GROUP_TIMEOUT in a collective (NCCL's own default, 10 minutes, is shorter than
building the cache of a large data set on a slow disk can take).
"""
import contextlib
import dataclasses
import datetime
import os

import torch

GROUP_TIMEOUT = datetime.timedelta(hours=2)


def resolve_device(name):
    """'auto' | 'cpu' | 'cuda' -> torch.device; 'cuda' without a GPU is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(name)


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process stands: DDP or not, its rank of world_size, and its device.
    The defaults describe a plain single-process run on the CPU."""
    ddp: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def master(self):
        """Process 0: the one that prints and saves."""
        return self.rank == 0

    def log(self, *args, **kwargs):
        """print() on process 0, nothing elsewhere (one line per run, not one per process)."""
        if self.master:
            print(*args, **kwargs)


def setup_distributed(device_name):
    """A DistContext: DDP when torchrun set RANK/WORLD_SIZE/LOCAL_RANK (NCCL on CUDA, gloo on the
    CPU), else a single process. An unusable `device_name` is a ValueError."""
    device = resolve_device(device_name)
    if not ("RANK" in os.environ and "WORLD_SIZE" in os.environ):
        return DistContext(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
        init_group("nccl", device_id=device)
    else:
        init_group("gloo")
    return DistContext(ddp=True, rank=rank, local_rank=local_rank, world_size=world, device=device)


def init_group(backend, **kwargs):
    """dist.init_process_group(backend, timeout=GROUP_TIMEOUT, **kwargs), made so that
    destroy_process_group really frees the group (its gloo threads are joined before the process exits)."""
    import torch._dynamo  # noqa: F401  why: imported after the group exists (DDP does so lazily), dynamo keeps references to the group, which then outlives destroy_process_group and its gloo threads abort the exit (-6)
    import torch.distributed as dist

    dist.init_process_group(backend=backend, timeout=GROUP_TIMEOUT, **kwargs)


def teardown_distributed(ctx):
    if ctx.ddp:
        import gc

        import torch.distributed as dist

        gc.collect()  # a DDP model kept alive by a traceback's reference cycle should not outlive its group
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device_name):
    """setup_distributed for the length of a `with` block; the group is destroyed however it ends."""
    ctx = setup_distributed(device_name)
    try:
        yield ctx
    finally:
        teardown_distributed(ctx)


def barrier(ctx):
    if ctx.ddp:
        import torch.distributed as dist

        dist.barrier(device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def broadcast_object(obj, ctx):
    """`obj` of process 0 on every process (a picklable Python object); the object itself without DDP."""
    if not ctx.ddp:
        return obj
    import torch.distributed as dist

    box = [obj if ctx.master else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_master(fn, ctx):
    """fn() on process 0 alone, its result broadcast to every process (without DDP: fn()). A
    ValueError, FileNotFoundError or RuntimeError there is raised again on every process (same type
    family, same message), so that none waits forever for a result that never comes."""
    if ctx is None or not ctx.ddp:
        return fn()
    result = None
    if ctx.master:
        try:
            result = ("ok", fn())
        except (ValueError, RuntimeError, FileNotFoundError) as e:
            kind = "ValueError" if isinstance(e, ValueError) else "FileNotFoundError" if isinstance(
                e, FileNotFoundError) else "RuntimeError"
            result = (kind, str(e))
    kind, value = broadcast_object(result, ctx)
    if kind != "ok":
        raise {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError}.get(kind, RuntimeError)(value)
    return value


def on_every_process(fn, ctx):
    """[fn() of process 0, of process 1, ...] on every process, each fn() doing its share of some work
    ([fn()] without DDP). A ValueError, FileNotFoundError or RuntimeError on any of them is raised again on
    all (the first process's, by rank), so that none goes on alone into a collective the others never reach."""
    if ctx is None or not ctx.ddp:
        return [fn()]
    import torch.distributed as dist

    try:
        outcome = ("ok", fn())
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        outcome = (next(k for k in (FileNotFoundError, ValueError, RuntimeError) if isinstance(e, k)), str(e))
    outcomes = [None] * ctx.world_size
    dist.all_gather_object(outcomes, outcome)
    for kind, value in outcomes:
        if kind != "ok":
            raise kind(value)
    return [value for _, value in outcomes]


def gather_object(obj, ctx):
    """[obj of process 0, obj of process 1, ...] on process 0 (None on the others); [obj] without DDP."""
    if not ctx.ddp:
        return [obj]
    import torch.distributed as dist

    box = [None] * ctx.world_size if ctx.master else None
    dist.gather_object(obj, box, dst=0)
    return box


def sync_buffers(model, ctx):
    """Process 0's buffers (BatchNorm running statistics) on every process. DDP broadcasts them
    before each training forward; each process then updates its copy from its own batch."""
    if ctx.ddp:
        import torch.distributed as dist

        for b in model.buffers():
            dist.broadcast(b, src=0)
