"""Provenance sidecars: one JSON per output saying what produced it, from what, how and when.

The sidecar is written last, so its presence (with ``"status": "complete"``) marks a finished case;
``--resume`` trusts a case only when the sidecar, every file it lists (by size) and the model agree.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from medseg.core.atomic import atomic_write_text
from medseg.core.hashing import sha256_file
from medseg.inference.model_loading import ModelInfo

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
    """Versions that can change a result."""
    import monai
    import torch

    import medseg

    return {"medseg": medseg.__version__, "torch": torch.__version__, "monai": monai.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}


def build_sidecar(*, input_path: str, input_sha256: str, input_shape, input_affine, model: ModelInfo,
                  card_dict: dict[str, Any], label_names, parameters: dict[str, Any], settings: dict[str, Any],
                  outputs: dict[str, dict[str, Any]], started: str, seconds: float,
                  timings: dict[str, float], warnings: list[str]) -> dict[str, Any]:
    """The provenance record of one case (JSON-ready)."""
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
