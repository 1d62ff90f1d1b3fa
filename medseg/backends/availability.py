"""Which optional inference runtimes are installed, their versions, and what this CPU can do.

Nothing here imports OpenVINO or ONNX Runtime at medseg import time, so ``medseg`` works without the ``cpu``
extra. :func:`is_available` only looks the packages up (``importlib.util.find_spec``): importing ``onnx``
costs about 0.9 CPU-s and is needed only when a model is exported, not on a compiled-cache hit (a package
that is present but broken fails at export or compile time, and that failure falls back to PyTorch).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import platform
from types import ModuleType

from medseg.core.install import extra_hint

EXTRA_HINT = extra_hint("cpu")  # the command that works for how medseg was installed (clone or wheel)
BACKENDS = ("torch", "openvino", "onnxruntime")
_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


def import_backend(backend: str) -> ModuleType | None:
    """The backend's Python module, or None when it or ``onnx`` is not installed (or fails to import).
    ``onnx`` (the exporter needs it for every compiled backend) is looked up, not imported."""
    if backend == "torch":
        import torch

        return torch
    if not _installed("onnx"):
        return None
    try:
        return importlib.import_module(_MODULES[backend])
    except ImportError:
        return None


def import_backend_dependency(name: str) -> ModuleType | None:
    """An optional module by name, or None when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_available(backend: str) -> bool:
    """True when ``backend`` and ``onnx`` are installed (looked up, not imported; torch: always)."""
    return backend == "torch" or (backend in _MODULES and _installed("onnx") and _installed(_MODULES[backend]))


def available_backends() -> list[str]:
    """The installed backends, torch first."""
    return [b for b in BACKENDS if is_available(b)]


def library_versions(backend: str) -> dict[str, str]:
    """The versions that change an exported or compiled model (part of the cache key)."""
    import torch

    versions = {"torch": torch.__version__}
    module = import_backend(backend) if backend != "torch" else None
    if module is not None:
        versions[backend] = str(getattr(module, "__version__", "unknown"))
        versions["onnx"] = _distribution_version("onnx")
    return versions


def _distribution_version(name: str) -> str:
    """An installed package's version from its metadata: ``onnx.__version__`` without importing onnx."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(import_backend_dependency(name), "__version__", "unknown"))


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity where the OS exposes it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where the OS does not expose them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16).

    Falls back to OpenVINO's own capability list on systems without /proc/cpuinfo.
    """
    flags = cpu_flags()
    if flags:
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    ov = import_backend("openvino")
    if ov is None:
        return False
    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - a capability query must never break inference
        return False


def cpu_fingerprint() -> str:
    """A short id of the CPU's architecture and instruction sets: compiled blobs are only valid on it."""
    text = platform.machine() + "|" + (" ".join(sorted(cpu_flags())) or platform.processor())
    return hashlib.sha256(text.encode()).hexdigest()[:16]
