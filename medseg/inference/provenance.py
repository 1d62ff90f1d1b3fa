"""Provenance sidecars: one JSON per output saying what produced it, from what, how and when.

The sidecar is written last, so its presence (with ``"status": "complete"``) marks a finished case;
``--resume`` trusts a case only when the sidecar, every file it lists (by size) and the model agree.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import platform
import sys
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from medseg.core.atomic import atomic_write_text
from medseg.core.hashing import sha256_file
from medseg.inference.prediction import ModelInfo

SCHEMA = "medseg.predict/1"


def input_digest(path: str | PathLike) -> str:
    """sha256 of a file; for a DICOM folder, sha256 over its files' names and digests (sorted)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    digest = hashlib.sha256()
    for child in sorted(c for c in p.iterdir() if c.is_file()):
        digest.update(child.name.encode() + b"\0" + sha256_file(child).encode() + b"\n")
    return digest.hexdigest()


def now_iso() -> str:
    """Current UTC time, ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def environment() -> dict[str, str]:
    """Versions that can change a result (MONAI's from its package metadata when this run did not import it:
    the nnU-Net folder and TotalSegmentator paths do not)."""
    import torch

    import medseg

    return {"medseg": medseg.__version__, "torch": torch.__version__, "monai": _monai_version(),
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}


def _monai_version() -> str:
    monai = sys.modules.get("monai")
    if monai is not None:
        return str(monai.__version__)
    try:
        return importlib.metadata.version("monai")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _windows_ran_on_cpu(predictor: Any, settings: Mapping[str, Any]) -> bool:
    placement = str(settings.get("placement", ""))
    if placement.startswith("compute on "):  # e.g. a GPU out-of-memory fallback to the CPU
        return placement.removeprefix("compute on ").startswith("cpu")
    device = getattr(predictor, "device", None)
    return getattr(device, "type", "cpu") == "cpu"


def run_record(predictor: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """How the windows of one case were computed: backend, precision, mirroring TTA (axes and passes),
    threads and device. These change a few voxels, so every output records them.

    ``predictor`` is the :class:`~medseg.inference.predictor.Predictor` that ran the case (its CPU runtime,
    :func:`medseg.backends.get_predictor`, counts only when the windows ran on the CPU); ``settings`` are the
    case's resolved settings (``Prediction.settings``), which say where the windows actually ran."""
    import torch

    on_cpu = _windows_ran_on_cpu(predictor, settings)
    runtime = getattr(predictor, "cpu_network", None) if on_cpu else None
    inner = getattr(runtime, "runtime", runtime)  # a GuardedRuntime wraps the compiled predictor
    if runtime is not None and not getattr(runtime, "trusted", True):   # PyTorch ran every window instead
        backend, precision = "torch", "fp32"
        name = getattr(runtime, "compiled_name", f"{runtime.backend} {runtime.precision}")
        reason = f"{name} failed the accuracy guard: PyTorch fp32"
    elif runtime is not None and hasattr(runtime, "backend"):
        backend, precision = str(runtime.backend), str(runtime.precision)
        reason = str(getattr(runtime, "reason", "") or getattr(inner, "reason", ""))
        if inner is not runtime:
            remembered = getattr(runtime, "remembered", None)
            reason += f" ({remembered.describe()})" if remembered is not None else \
                " (checked against PyTorch fp32 on the first windows)"
    elif on_cpu:
        backend, precision, reason = "torch", "fp32", "PyTorch on the CPU"
    else:
        backend, reason = "torch", "PyTorch on the GPU"
        precision = "fp16 autocast" if settings.get("amp") else "fp32"
    if backend == "torch" or not on_cpu:
        threads = torch.get_num_threads() if on_cpu else None
    else:
        threads = getattr(runtime, "threads", None) or getattr(inner, "threads", None)
    axes = sorted({int(a) for a in settings.get("mirror_axes") or ()}) if settings.get("tta") else []
    record: dict[str, Any] = {
        "backend": backend, "precision": precision, "backend_reason": reason,
        "tta": {"mirroring": bool(axes), "mirror_axes": axes, "passes": 2 ** len(axes)},
        "threads": threads, "device": settings.get("device"),
        **({"torch_threads": settings["glue_threads"]} if settings.get("glue_threads") else {}),
        "windows_on": "cpu" if on_cpu else str(settings.get("placement", "")).removeprefix("compute on ").split(",")[0],
    }
    for name in ("mode", "calibration"):  # OpenVINO latency/throughput mode; INT8 calibration set
        if getattr(runtime, name, None):
            record[name] = str(getattr(runtime, name))
    if getattr(runtime, "_fallback", None) is not None:  # windows of another shape ran in PyTorch fp32
        record["fallback"] = "torch fp32 for windows of another shape"
    return record


def build_sidecar(*, input_path: str, input_sha256: str, input_shape, input_affine, model: ModelInfo,
                  card_dict: dict[str, Any], label_names, parameters: dict[str, Any], settings: dict[str, Any],
                  outputs: dict[str, dict[str, Any]], started: str, seconds: float,
                  timings: dict[str, float], warnings: list[str], run: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The provenance record of one case (JSON-ready); ``run`` is :func:`run_record` (how it was made)."""
    import medseg

    return {
        "schema": SCHEMA,
        "status": "complete",
        "medseg_version": medseg.__version__,
        "created": started,
        "duration_s": round(seconds, 3),
        "input": {"path": input_path, "sha256": input_sha256, "shape": [int(s) for s in input_shape],
                  "affine": np.round(np.asarray(input_affine, dtype=np.float64), 6).tolist()},
        "model": {"name": model.name, "tag": model.tag, "full_name": model.full_name,
                  "weights_sha256": model.weights_sha256, "weights_file": model.weights_file,
                  "card": card_dict},
        "labels": {str(i): name for i, name in enumerate(label_names)},
        "parameters": parameters,
        "device": settings.get("device"),
        "run": run or {},
        "settings": settings,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "warnings": list(warnings),
        "outputs": outputs,
        "environment": environment(),
    }


def write_sidecar(path: str | PathLike, record: dict[str, Any]) -> None:
    """Write the record atomically (after every output it lists)."""
    atomic_write_text(path, json.dumps(record, indent=1, default=str))


def read_sidecar(path: str | PathLike) -> dict[str, Any] | None:
    """The parsed sidecar, or None when missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(path: str | PathLike, *, model: ModelInfo, parameters: dict[str, Any]) -> bool:
    """True when the sidecar says complete, lists outputs that all exist with their recorded sizes, and
    was made by the same model weights with the same output parameters."""
    record = read_sidecar(path)
    if not record or record.get("status") != "complete" or record.get("schema") != SCHEMA:
        return False
    recorded = record.get("model", {})
    if recorded.get("full_name") != model.full_name or recorded.get("weights_sha256") != model.weights_sha256:
        return False
    if record.get("parameters") != json.loads(json.dumps(parameters, default=str)):
        return False
    base = Path(path).parent
    for entry in record.get("outputs", {}).values():
        target = base / entry["path"]
        if not target.exists() or (target.is_file() and target.stat().st_size != entry.get("bytes")):
            return False
    return True
