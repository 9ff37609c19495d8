"""What keeps training from waiting: no host read of device values per step, and the default number of
DataLoader workers. (The cache itself: tests/test_cache.py.)"""
import pytest
import torch

from fmrgb.training.engine import Execution, run_epoch
from fmrgb.training.sampling import MAX_WORKERS, default_workers

HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def host_reads_during(fn, monkeypatch):
    """How often fn() reads a tensor's value on the host (each such read waits for a GPU to catch up)."""
    count = [0]
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **k):
            count[0] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    fn()
    monkeypatch.undo()
    return count[0]


@pytest.mark.parametrize("training", [False, True], ids=["evaluation", "training"])
def test_a_pass_reads_the_device_once_whatever_its_length(monkeypatch, training):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    batch = (torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))

    def one_pass(steps):
        opt = torch.optim.SGD(model.parameters(), lr=0.01) if training else None
        return lambda: run_epoch(model, [batch] * steps, Execution(torch.device("cpu")), optimizer=opt)

    assert host_reads_during(one_pass(1), monkeypatch) == host_reads_during(one_pass(6), monkeypatch)


def test_a_nan_loss_is_reported_with_the_step_it_appeared_at():
    class NaNFromStep3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.calls = torch.nn.Linear(3, 2), 0

        def forward(self, x):
            self.calls += 1
            return self.lin(x) * (float("nan") if self.calls >= 3 else 1.0)

    loader = [(torch.randn(2, 3), torch.tensor([0, 1]))] * 5
    with pytest.raises(FloatingPointError, match=r"epoch 1/1: the loss became nan at step 3; try a lower --lr"):
        run_epoch(NaNFromStep3(), loader, Execution(torch.device("cpu")), desc="epoch 1/1")


@pytest.mark.parametrize("cores, local_world, workers", [(2, None, 2), (16, "4", 4), (1, None, 1), (3, "4", 1),
                                                         (128, None, MAX_WORKERS)])
def test_workers_default_to_the_cores_shared_by_the_processes_of_the_machine(monkeypatch, cores, local_world,
                                                                              workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    if local_world is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    assert default_workers() == workers
