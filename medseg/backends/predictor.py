"""``get_predictor``: a drop-in replacement for ``model(x)`` that runs on the fastest suitable runtime.

The returned callable takes ``(N, C, *roi_size)`` and returns ``(N, K, *roi_size)`` float32 logits, like
the PyTorch model in eval mode, so it can be given to MONAI's ``sliding_window_inference`` as its
``predictor``; windowing, TTA and stitching do not change with the backend.

Compiled forms are cached in two levels (see :mod:`medseg.backends.cache`): the ONNX export, keyed by
the weights' sha256, architecture, window, input channels and torch version; and per backend and
precision the runtime's own compiled file, keyed additionally by its library version and the CPU (INT8:
also by the calibration set's key and NNCF's version, :mod:`medseg.backends.int8`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.backends import cache
from medseg.backends.availability import (
    available_cores,
    cpu_fingerprint,
    library_versions,
)
from medseg.backends.calibration import CalibrationSet
from medseg.backends.export import (
    ExportError,
    architecture_sha256,
    export_onnx,
    infer_in_channels,
    weights_sha256,
)
from medseg.backends.guard import GUARD_DICE
from medseg.backends.selection import Plan, resolve
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)
ONNX_FILE = "model.onnx"
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
EXPORT_BATCH = 1  # traced with one window (cheapest); the batch axis stays dynamic (tested with 1 and 3)


class Predictor:
    """Base of the callables :func:`get_predictor` returns. Not thread-safe: one per worker."""

    backend: str
    precision: str
    reason: str
    cache_path: Path | None = None
    threads: int | None = None           # CPU threads of a compiled runtime (None: PyTorch's own setting)
    build_seconds: float | None = None   # export + compile seconds spent in this call (None: cache hit)
    mode: str | None = None              # OpenVINO: "latency" or "throughput" (batches of windows)
    calibration: str | None = None       # INT8: the calibration set (source and key)
    guard: dict | None = None            # INT8: int8 vs fp32 agreement on the calibration windows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``openvino bf16 (auto: fastest within the guard)``."""
        mode = f", {self.mode} mode" if self.mode else ""
        return f"{self.backend} {self.precision} ({self.reason}{mode})"


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_tensor() if hasattr(x, "as_tensor") else x  # MONAI MetaTensor -> torch.Tensor


class TorchPredictor(Predictor):
    """The PyTorch model itself, optionally under autocast (CPU bf16, CUDA fp16/bf16)."""

    def __init__(self, model: nn.Module, precision: str = "fp32", reason: str = "requested torch") -> None:
        self.model = model.eval()
        self.backend, self.precision, self.reason = "torch", precision, reason
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_AUTOCAST_DTYPES[self.precision])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._autocast():
            out = self.model(_plain(x).to(self.device))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.float()


class CompiledPredictor(Predictor):
    """Runs an OpenVINO or ONNX Runtime model on CPU arrays; other window shapes go to PyTorch."""

    def __init__(self, runner, plan: Plan, window: tuple[int, ...], model: nn.Module) -> None:
        self.runner = runner
        self.backend, self.precision, self.reason = plan.backend, plan.precision, plan.reason
        self.window = window
        self._model = model
        self._fallback: TorchPredictor | None = None
        self.mode = getattr(runner, "mode", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _plain(x)
        if tuple(x.shape[1:]) != self.window:
            if self._fallback is None:
                logger.warning("input %s is not the compiled window %s: running PyTorch fp32 for it",
                               tuple(x.shape[1:]), self.window)
                self._fallback = TorchPredictor(self._model, "fp32", "window shape differs")
            return self._fallback(x)
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.runner(arr)).to(x.device)


def _device(model: nn.Module, device, backend: str) -> torch.device:
    if device is not None:
        return torch.device(device)
    current = next((p.device for p in model.parameters()), torch.device("cpu"))
    if current.type == "cuda":
        return current
    if str(backend).lower() == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return current


def get_predictor(
    model: nn.Module,
    *,
    backend: str = "auto",
    precision: str = "auto",
    roi_size: Sequence[int],
    batch_size: int = 1,
    cache_dir: str | PathLike | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
    in_channels: int | None = None,
    mode: str = "auto",
    calibration: CalibrationSet | None = None,
    guard_dice: float = GUARD_DICE,
) -> Predictor:
    """A callable ``(N, C, *roi_size) -> (N, K, *roi_size)`` float32 logits for ``model`` (set to eval).

    Args:
        model: the network; its forward returns logits (a tuple in training mode is handled).
        backend: ``auto`` (GPU: PyTorch AMP; CPU: the measured fastest runtime within the accuracy
            guard), ``torch``, ``openvino`` or ``onnxruntime``.
        precision: ``auto``, ``fp32``, ``bf16`` (CPU autocast or OpenVINO bf16) or ``fp16`` (CUDA only).
        roi_size: the sliding-window size the model is compiled for.
        batch_size: windows per call (MONAI's ``sw_batch_size``). Compiled models have a dynamic batch
            axis and accept any batch size, so it is not part of the cache key.
        cache_dir: compiled-model cache (default ``$MEDSEG_CACHE_DIR`` or ``~/.cache/medseg/compiled``).
        device: where PyTorch runs (default: the model's device; ``auto`` moves it to CUDA if available).
        threads: CPU threads for OpenVINO / ONNX Runtime (default: all cores this process may use).
        in_channels: input channels when the model has no ``card`` (default: first convolution's).
        mode: OpenVINO's way to run a batch of windows: ``latency`` (one request), ``throughput``
            (one window per request over several streams) or ``auto`` (throughput with 2+ threads for
            windows up to 2**17 voxels, as measured; :mod:`medseg.backends.openvino_backend`).
        calibration: scans for ``precision="int8"`` (:mod:`medseg.backends.calibration`); required then.
        guard_dice: the worst label Dice vs fp32 that int8 must keep on its calibration windows (lower it
            only to measure int8 anyway, as ``benchmarks/bench_backends.py`` does).

    A missing runtime raises :class:`~medseg.core.errors.MedsegError` naming ``medseg[cpu]`` (``auto``
    falls back to PyTorch with one log line); a model that cannot be exported or compiled runs in
    PyTorch with a warning saying why. ``predictor.describe()`` says what was chosen. INT8 whose labels
    fail the accuracy guard on its calibration windows runs OpenVINO fp32 instead, with a warning.
    """
    from medseg.backends.int8 import GuardRefused, nncf_version
    from medseg.backends.openvino_backend import MODES

    model.eval()
    if mode not in MODES:
        raise MedsegError(f"unknown OpenVINO mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    plan = resolve(backend, precision, _device(model, device, backend))
    if plan.backend == "torch":
        return TorchPredictor(model.to(plan.device), plan.precision, plan.reason)
    if plan.precision == "int8":
        nncf_version()  # a clear error naming the extra before anything is exported
        if calibration is None:
            raise MedsegError("int8 needs calibration scans (a handful of the model's training cases)",
                              hint="pass --calibration FOLDER, or calibration= to get_predictor")
    args = (tuple(int(s) for s in roi_size), Path(cache_dir).expanduser() if cache_dir else cache.default_cache_dir(),
            int(threads or available_cores()), in_channels, mode, calibration, guard_dice)
    try:
        return _compiled_or_torch(model, plan, args)
    except GuardRefused as exc:
        logger.warning("%s; running OpenVINO fp32 instead", exc)
        fp32 = Plan("openvino", "fp32", plan.device, f"int8 refused by the accuracy guard ({exc.message})")
        return _compiled_or_torch(model, fp32, args)


def _compiled_or_torch(model: nn.Module, plan: Plan, args: tuple) -> Predictor:
    """The compiled predictor, or PyTorch with a warning when export or compilation fails. INT8's own
    errors (guard refusal, unusable calibration scans) go to the caller."""
    try:
        return _compiled(model, plan, *args)
    except MedsegError as exc:
        if plan.precision == "int8":
            raise
        failure: Exception = exc
    except Exception as exc:  # noqa: BLE001 - any export/compile failure: run the model in PyTorch
        failure = exc
    reason = str(failure) if isinstance(failure, ExportError) else \
        f"{plan.backend} failed: {type(failure).__name__}: {failure}"
    precision = "fp32" if plan.precision == "int8" else plan.precision
    logger.warning("cannot use %s for this model (%s); running PyTorch %s instead",
                   plan.backend, reason[:300], precision)
    return TorchPredictor(model, precision, f"fallback to PyTorch: {reason[:300]}")


def _entry_fields(model: nn.Module, plan: Plan, roi: tuple[int, ...], channels: int) -> tuple[dict, dict]:
    """The cache fields of the ONNX export and of the runtime's compiled form (before INT8's own fields)."""
    onnx_fields = {"kind": "onnx", "weights": weights_sha256(model), "arch": architecture_sha256(model),
                   "roi": list(roi), "in_channels": channels, "torch": torch.__version__}
    fields = {"kind": plan.backend, "onnx": cache.cache_key(onnx_fields), "precision": plan.precision,
              "versions": library_versions(plan.backend), "cpu": cpu_fingerprint()}
    return onnx_fields, fields


def compiled_entry(model: nn.Module, *, backend: str = "auto", precision: str = "auto", roi_size: Sequence[int],
                   cache_dir: str | PathLike | None = None, in_channels: int | None = None) -> Path | None:
    """Where :func:`get_predictor` keeps (or would build) the compiled form of ``model`` for these arguments on
    the CPU, without building or loading anything; None where it would run PyTorch or INT8 (whose entries
    also depend on the calibration set). Used to read the run-time guard's remembered verdict
    (:mod:`medseg.backends.verdict`) before paying for a compiled runtime."""
    plan = resolve(backend, precision, torch.device("cpu"))
    if plan.backend == "torch" or plan.precision == "int8":
        return None
    root = Path(cache_dir).expanduser() if cache_dir else cache.default_cache_dir()
    channels = int(in_channels or infer_in_channels(model))
    _, fields = _entry_fields(model, plan, tuple(int(s) for s in roi_size), channels)
    return root / cache.cache_key(fields)


def _compiled(model: nn.Module, plan: Plan, roi: tuple[int, ...], root: Path, threads: int,
              in_channels: int | None, mode: str = "auto", calibration: CalibrationSet | None = None,
              guard_dice: float = GUARD_DICE) -> CompiledPredictor:
    channels = int(in_channels or infer_in_channels(model))
    onnx_fields, fields = _entry_fields(model, plan, roi, channels)

    def build_onnx(entry: Path) -> None:
        export_onnx(model, entry / ONNX_FILE, roi_size=roi, in_channels=channels, batch_size=EXPORT_BATCH)

    def onnx_path() -> Path:  # only needed when the compiled form is (re)built
        return cache.get_or_build(root, onnx_fields, build_onnx, lambda entry: entry).value / ONNX_FILE

    if plan.precision == "int8" and calibration is not None:
        from medseg.backends import int8
        from medseg.backends import openvino_backend as impl

        fields |= {"calibration": calibration.key, "nncf": int8.nncf_version()}

        def build(entry: Path) -> None:
            int8.build(entry, onnx_path(), window=(channels, *roi), threads=threads, calibration=calibration)

        def load(entry: Path):
            int8.read_guard(entry)  # an entry without its guard result is corrupt: rebuilt
            return impl.OpenVINORunner(entry, precision="int8", threads=threads, mode=mode)
    elif plan.backend == "openvino":
        from medseg.backends import openvino_backend as impl

        def build(entry: Path) -> None:
            impl.build(entry, onnx_path(), window=(channels, *roi), precision=plan.precision, threads=threads)

        def load(entry: Path):
            return impl.OpenVINORunner(entry, precision=plan.precision, threads=threads, mode=mode)
    else:
        from medseg.backends import onnxruntime_backend as impl

        def build(entry: Path) -> None:
            impl.build(entry, onnx_path(), threads=threads)

        def load(entry: Path):
            return impl.ONNXRuntimeRunner(entry, threads=threads)

    compiled = cache.get_or_build(root, fields, build, load)
    predictor = CompiledPredictor(compiled.value, plan, (channels, *roi), model)
    if plan.precision == "int8" and calibration is not None:
        from medseg.backends.int8 import check_guard

        predictor.guard = check_guard(compiled.path, guard_dice)  # GuardRefused when int8 labels differ from fp32
        predictor.calibration = f"{calibration.source} (key {calibration.key[:12]})"
    predictor.cache_path, predictor.build_seconds = compiled.path, compiled.build_seconds
    predictor.threads = threads  # recorded in each output's provenance sidecar
    logger.info("inference backend: %s, cache %s", predictor.describe(), compiled.path)
    return predictor
