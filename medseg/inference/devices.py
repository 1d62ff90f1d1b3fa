"""Device choice, CPU threads and the out-of-memory fallback ladder (GPU -> GPU with CPU stitching -> CPU)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)
T = TypeVar("T")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else MPS, else CPU; ``cuda``/``cuda:N``/``mps``/``cpu`` are checked."""
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise MedsegError(f"unknown device {device!r}", hint="use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MedsegError("CUDA was asked for but no CUDA GPU is available", hint="use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MedsegError(f"there is no {name}: {torch.cuda.device_count()} CUDA device(s)")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MedsegError("MPS was asked for but is not available", hint="use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise MedsegError(f"unsupported device {device!r}", hint="use auto, cpu, cuda, cuda:N or mps")
    return dev


def describe_device(device: torch.device, threads: int | None = None) -> str:
    """A human label, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (8 threads)`` (``threads``: the
    predictor's setting, default torch's current one)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({threads or torch.get_num_threads()} threads)"
    return str(device)


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def set_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads``, else $OMP_NUM_THREADS, else the CPUs we may use."""
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else available_cpus()
    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, then restore the previous setting.

    While a compiled CPU runtime (OpenVINO / ONNX Runtime, with its own threads) computes the windows, torch
    only flips, blends and decodes small tensors; its OpenMP threads would spin between those ops and take
    cores from the runtime (measured: about 20% more CPU time per small case on 2 cores), so they use one."""
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@dataclass(frozen=True)
class Placement:
    """Where windows run and where their sums are stitched."""

    compute: torch.device
    stitch: torch.device

    def __str__(self) -> str:
        return f"compute on {self.compute}, stitch on {self.stitch}"


def placements_for(device: torch.device) -> list[Placement]:
    """The fallback ladder for a device: GPU/GPU, GPU/CPU, CPU/CPU (just CPU/CPU on the CPU)."""
    cpu = torch.device("cpu")
    if device.type == "cpu":
        return [Placement(cpu, cpu)]
    return [Placement(device, device), Placement(device, cpu), Placement(cpu, cpu)]


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS out-of-memory errors (by type, or by message for older builds and other backends)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def run_with_fallback(attempt: Callable[[Placement], T], placements: list[Placement],
                      warn: Callable[[str], None] | None = None) -> tuple[T, Placement]:
    """Run ``attempt`` on each placement in turn until one does not run out of memory."""
    for i, placement in enumerate(placements):
        try:
            return attempt(placement), placement
        except Exception as exc:
            if not is_out_of_memory(exc) or i == len(placements) - 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            message = f"out of memory with {placement}; retrying with {placements[i + 1]}"
            logger.warning(message)
            if warn is not None:
                warn(message)
    raise AssertionError("unreachable")
