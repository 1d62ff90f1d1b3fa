import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.inference.devices import (
    Placement,
    is_out_of_memory,
    placements_for,
    resolve_device,
    run_with_fallback,
    set_cpu_threads,
)


def test_fallback_ladder_stitches_on_cpu_then_runs_on_cpu():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    ladder = placements_for(cuda)
    assert ladder == [Placement(cuda, cuda), Placement(cuda, cpu), Placement(cpu, cpu)]
    tried, warnings = [], []

    def attempt(placement):
        tried.append(placement)
        if placement.compute.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "ok"

    result, used = run_with_fallback(attempt, ladder, warnings.append)
    assert result == "ok" and used == Placement(cpu, cpu) and tried == ladder
    assert len(warnings) == 2 and "stitch on cpu" in warnings[0]


def test_other_errors_are_not_swallowed():
    def attempt(placement):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        run_with_fallback(attempt, placements_for(torch.device("cuda", 0)))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_device_names_are_checked():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(MedsegError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MedsegError, match="no CUDA"):
            resolve_device("cuda:0")


def test_threads_follow_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_cpu_threads() == 1 and torch.get_num_threads() == 1
        assert set_cpu_threads(2) == 2
    finally:
        torch.set_num_threads(before)
