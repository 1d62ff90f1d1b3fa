"""Turn ``backend``/``precision`` requests (including ``auto``) into one concrete plan.

The CPU default is the fastest combination that ``benchmarks/bench_backends.py`` measured while keeping
every hippocampus case's labels within the accuracy guard (Dice >= 0.999 vs PyTorch fp32); see the
"Fast CPU inference" section of ``benchmarks/README.md``. Combinations that are faster but outside the
guard are only used when asked for explicitly (``precision="bf16"``, the CLI's ``--fast``). ``int8``
(NNCF post-training quantisation, OpenVINO only) is never chosen automatically: it needs calibration scans
and is checked by the accuracy guard before it is used (:mod:`medseg.backends.int8`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from medseg.backends.availability import EXTRA_HINT, cpu_supports_bf16, is_available
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)

BACKEND_CHOICES = ("auto", "torch", "openvino", "onnxruntime")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")

# Measured CPU order, fastest first, among combinations inside the accuracy guard.
CPU_DEFAULTS: tuple[tuple[str, str], ...] = (("openvino", "fp32"), ("onnxruntime", "fp32"), ("torch", "fp32"))
# The fastest CPU combination when the user accepts bf16 (``--fast`` / ``precision="bf16"``).
CPU_FAST_BF16: tuple[tuple[str, str], ...] = (("openvino", "bf16"), ("torch", "bf16"))
_SUPPORTED = {
    "torch": {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "bf16", "fp16")},
    "openvino": {"cpu": ("fp32", "bf16", "int8")},
    "onnxruntime": {"cpu": ("fp32",)},
}


@dataclass(frozen=True)
class Plan:
    """The concrete choice: which runtime, which precision, on which device, and why."""

    backend: str
    precision: str
    device: torch.device
    reason: str


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    value = str(value).lower()
    if value not in choices:
        raise MedsegError(f"unknown {what} {value!r}", hint=f"choose one of {', '.join(choices)}")
    return value


def resolve(backend: str, precision: str, device: torch.device) -> Plan:
    """Pick the backend and precision for ``device``; raise :class:`MedsegError` for impossible requests."""
    backend = _check_choice(backend, BACKEND_CHOICES, "backend")
    precision = _check_choice(precision, PRECISION_CHOICES, "precision")
    kind = "cuda" if device.type == "cuda" else "cpu"
    if kind == "cuda":
        if backend in ("openvino", "onnxruntime") or precision == "int8":
            what = f"the {backend} backend" if precision != "int8" else "int8 (OpenVINO)"
            raise MedsegError(f"{what} runs on CPU only",
                              hint="use --backend torch (or auto) on a GPU, or --device cpu")
        chosen = "fp16" if precision == "auto" else precision
        why = "GPU: PyTorch with CUDA autocast (AMP)" if chosen != "fp32" else "GPU: PyTorch fp32"
        return Plan("torch", chosen, device, why)
    if precision == "fp16":
        raise MedsegError("fp16 inference needs a CUDA GPU",
                          hint="use --precision bf16 (or fp32) on a CPU")
    if precision == "int8":
        return _int8(backend, device)
    if backend == "auto":
        return _auto_cpu(precision, device)
    if not is_available(backend):
        raise MedsegError(f"the {backend} backend is not installed", hint=EXTRA_HINT)
    if precision == "auto":
        precision = "fp32"
    if precision not in _SUPPORTED[backend]["cpu"]:
        ok = ", ".join(_SUPPORTED[backend]["cpu"])
        raise MedsegError(f"the {backend} backend supports {ok} on CPU, not {precision}",
                          hint="use --backend openvino for bf16 on CPU")
    if precision == "bf16" and not cpu_supports_bf16():
        logger.warning("this CPU has no native bf16 (avx512_bf16/amx): bf16 is emulated and may be slower")
    return Plan(backend, precision, device, f"requested {backend} {precision}")


def _auto_cpu(precision: str, device: torch.device) -> Plan:
    if precision == "bf16" and not cpu_supports_bf16():
        logger.info("this CPU has no native bf16 (avx512_bf16/amx): using fp32, which is faster here")
        precision = "fp32"
    if precision == "bf16":
        candidates, why = CPU_FAST_BF16, "bf16 requested"
    elif precision == "fp32":
        candidates, why = tuple(c for c in CPU_DEFAULTS if c[1] == "fp32"), "fp32 requested"
    else:
        candidates, why = CPU_DEFAULTS, "fastest within the accuracy guard on this CPU"
    for backend, chosen in candidates:
        if backend == "torch":
            break
        if is_available(backend):
            return Plan(backend, chosen, device, f"auto: {why}")
    fallback = "bf16" if precision == "bf16" else "fp32"
    if not (is_available("openvino") or is_available("onnxruntime")):
        logger.warning("OpenVINO/ONNX Runtime not installed: running PyTorch %s on CPU (faster: %s)",
                       fallback, EXTRA_HINT)
        return Plan("torch", fallback, device, f"auto: PyTorch {fallback} (optional runtimes missing: {EXTRA_HINT})")
    return Plan("torch", fallback, device, f"auto: PyTorch {fallback}")


def _int8(backend: str, device: torch.device) -> Plan:
    if backend not in ("auto", "openvino"):
        raise MedsegError(f"int8 runs on the openvino backend, not {backend}",
                          hint="use --backend openvino (or auto) with --precision int8")
    if not is_available("openvino"):
        raise MedsegError("int8 needs the openvino backend, which is not installed", hint=EXTRA_HINT)
    return Plan("openvino", "int8", device, "requested int8 (NNCF post-training quantisation)")
