"""INT8 post-training quantisation with NNCF, checked by the accuracy guard before it is used.

Build (once per weights, window, calibration set and library versions; cached like every compiled
model): the ONNX export is converted to OpenVINO, NNCF inserts int8 quantisers whose ranges come from the
calibration windows (:mod:`medseg.backends.calibration`), and both the fp32 and the int8 network run on
those windows. Their label maps (argmax over classes; ``> 0`` for one-channel outputs) are compared with
:func:`medseg.backends.guard.compare_label_maps`, and the result is stored in the entry as ``guard.json``.
A quantised model whose worst label Dice is below :data:`medseg.backends.guard.GUARD_DICE` is refused
(:class:`GuardRefused`, cached too, so the next run refuses at once without calibrating again).
Scans also pass the run-time guard of :mod:`medseg.inference.runtime` on their first windows.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg.backends.availability import import_backend_dependency
from medseg.backends.calibration import CalibrationSet
from medseg.backends.guard import GUARD_DICE, compare_label_maps
from medseg.core.errors import MedsegError
from medseg.core.install import extra_hint
from medseg.core.log import get_logger

logger = get_logger(__name__)

GUARD_FILE = "guard.json"
INT8_HINT = extra_hint("int8")


class GuardRefused(MedsegError):
    """The quantised model's labels differ from fp32 beyond the accuracy guard."""


def nncf_version() -> str:
    """NNCF's version (part of the cache key); a clear error naming the extra when it is missing."""
    nncf = import_backend_dependency("nncf")
    if nncf is None:
        raise MedsegError("INT8 quantisation needs NNCF, which is not installed", hint=INT8_HINT)
    return str(getattr(nncf, "__version__", "unknown"))


def decode(logits: np.ndarray) -> np.ndarray:
    """Label maps of ``(N, K, *roi)`` logits: argmax over K, or ``> 0`` for one channel."""
    return (logits[:, 0] > 0).astype(np.uint8) if logits.shape[1] == 1 else logits.argmax(1).astype(np.uint8)


def quantize(model, windows: Sequence[np.ndarray]):
    """The NNCF-quantised copy of an ``ov.Model`` (int8 weights and activations, calibrated on ``windows``).

    The MIXED preset (asymmetric activations) with the output convolution left in fp32: on the shipped
    hippocampus model the closest to fp32 of the recipes tried (worst label Dice on held-out windows
    0.994, vs 0.988 for the PERFORMANCE preset on every layer), at the same speed."""
    import nncf

    convolutions = [op.get_friendly_name() for op in model.get_ordered_ops()
                    if op.get_type_name() in ("Convolution", "ConvolutionBackpropData")]
    ignored = nncf.IgnoredScope(names=convolutions[-1:]) if convolutions else None
    return nncf.quantize(model, nncf.Dataset(list(windows)), subset_size=len(windows),
                         preset=nncf.QuantizationPreset.MIXED, ignored_scope=ignored)


def agreement(reference, quantised, windows: Sequence[np.ndarray]) -> dict[str, Any]:
    """Run two compiled models on the windows and compare their label maps (all windows together)."""
    ref = np.concatenate([decode(np.asarray(reference(w)[0])) for w in windows])
    got = np.concatenate([decode(np.asarray(quantised(w)[0])) for w in windows])
    result = compare_label_maps(got, ref)
    return {"min_dice": result.min_dice, "dice": {str(k): v for k, v in result.dice.items()},
            "changed_fraction": result.changed_fraction, "windows": len(windows), "threshold": GUARD_DICE}


def build(entry: Path, onnx_path: Path, *, window: Sequence[int], threads: int,
          calibration: CalibrationSet) -> None:
    """Quantise, guard-check and compile; writes the blob and ``guard.json`` into ``entry``."""
    import openvino as ov

    from medseg.backends import openvino_backend as ovb

    model = ov.convert_model(str(onnx_path))
    ovb.reshape_dynamic_batch(model, window)
    windows = calibration.windows()
    logger.info("INT8: calibrating on %s (%d windows); this runs once per calibration set", calibration.source,
                len(windows))
    quantised = quantize(model, windows)
    core = ov.Core()
    config = ovb.runtime_config("int8", threads)
    check = agreement(core.compile_model(model, "CPU", config), core.compile_model(quantised, "CPU", config), windows)
    check["calibration"] = calibration.source
    (entry / GUARD_FILE).write_text(json.dumps(check, indent=1, sort_keys=True), encoding="utf-8")
    ovb.export_blob(quantised, entry, precision="int8", threads=threads)


def read_guard(entry: Path) -> dict[str, Any]:
    """The stored guard result of an INT8 entry."""
    return json.loads((entry / GUARD_FILE).read_text(encoding="utf-8"))


def check_guard(entry: Path, threshold: float = GUARD_DICE) -> dict[str, Any]:
    """The guard result, or :class:`GuardRefused` naming the worst Dice when it is below ``threshold``."""
    check = read_guard(entry)
    if float(check["min_dice"]) < threshold:
        raise GuardRefused(f"INT8 labels differ from fp32 on the calibration windows (worst label Dice "
                           f"{check['min_dice']:.4f} < {threshold})",
                           hint="use --precision fp32 (the default), or calibrate on other scans with --calibration")
    return check
