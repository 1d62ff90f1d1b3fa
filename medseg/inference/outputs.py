"""Write a case's results: label map (multilabel or one mask per class), statistics, probabilities, soft map.

Every image is written to a temporary name, read back and compared with what was meant (shape,
affine to 1e-5, voxel values) and only then renamed into place, so a wrong or partial file never
appears under the final name. A per-class folder is assembled under a temporary name and swapped in.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import medseg
from medseg.core.atomic import atomic_path, temp_dir
from medseg.core.errors import MedsegError
from medseg.inference.cases import Case
from medseg.io import read_array, split_ext, write_image

AFFINE_RTOL, AFFINE_ATOL = 1e-6, 1e-5


@dataclass(frozen=True)
class CaseFiles:
    """Where each output of a case goes (the sidecar sits beside the label output)."""

    labels: Path
    sidecar: Path
    stats_csv: Path
    stats_json: Path
    probabilities: Path
    soft: Path | None = None


def case_files(case: Case, output_type: str) -> CaseFiles:
    """Paths of every output of ``case`` for ``output_type`` (``multilabel`` or ``per-class``)."""
    parent = case.output.parent
    stem = case.output.name if output_type == "per-class" else split_ext(case.output)[0]
    return CaseFiles(
        labels=case.output,
        sidecar=parent / f"{stem}.json",
        stats_csv=parent / f"{stem}_stats.csv",
        stats_json=parent / f"{stem}_stats.json",
        probabilities=parent / f"{stem}_probabilities.nii.gz",
        soft=parent / f"{stem}_soft.nii.gz",
    )


def label_file_dtype(label_names) -> str:
    """uint8 up to 255 labels, else uint16."""
    return "uint8" if len(label_names) - 1 <= 255 else "uint16"


def _verify(path: Path, expected: np.ndarray, affine: np.ndarray, final: Path) -> None:
    got, got_affine, _ = read_array(path, allow_multichannel=True)   # numpy: the check needs no MetaTensor
    problems = []
    if got.shape != expected.shape:
        problems.append(f"shape {got.shape} != {expected.shape}")
    elif not np.array_equal(got, expected):
        problems.append("voxel values differ")
    if not np.allclose(got_affine, affine, rtol=AFFINE_RTOL, atol=AFFINE_ATOL):
        problems.append("affine differs from the input's")
    if problems:
        raise MedsegError("the written file does not match the prediction: " + "; ".join(problems),
                          path=final, hint="this is a bug or a format limitation; try a .nii.gz output")


def write_verified(data: np.ndarray, affine: np.ndarray, path: Path, *, dtype: str,
                   extensions: dict | None = None) -> dict[str, Any]:
    """Write channel-first ``data`` with ``affine``, re-read and check it, then rename into place."""
    data = data.astype(dtype, copy=False)
    with atomic_path(path) as temp:
        write_image(data, temp, affine=affine, dtype=dtype, extensions=extensions)
        _verify(temp, data, affine, path)
    return {"path": path.name, "bytes": path.stat().st_size}


def _json_extension(names, model_name: str) -> dict:
    return {"json": {"medseg_version": medseg.__version__, "model": model_name,
                     "labels": {str(i): n for i, n in enumerate(names) if n or i == 0}}}  # "": a value left out


def safe_names(names) -> list[str]:
    """File-system-safe, unique class names (index 0 = background is included)."""
    out, seen = [], set()
    for i, name in enumerate(names):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or f"label_{i}"
        if safe in seen:
            safe = f"{safe}_{i}"
        seen.add(safe)
        out.append(safe)
    return out


def write_multilabel(labels: np.ndarray, affine: np.ndarray, path: Path, names, model_name: str) -> dict[str, Any]:
    """The label map as one file (class names in a NIfTI JSON extension when the format is NIfTI)."""
    ext = split_ext(path)[1]
    extensions = _json_extension(names, model_name) if ext in (".nii", ".nii.gz") else None
    return write_verified(labels[None], affine, path, dtype=label_file_dtype(names), extensions=extensions)


def write_per_class(labels: np.ndarray, affine: np.ndarray, folder: Path, names, ext: str,
                    model_name: str) -> dict[str, dict[str, Any]]:
    """One binary uint8 mask per foreground class in ``folder`` (built aside, swapped in at the end)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_dir(folder)  # named like atomic temp files, so a killed run's leftover is cleaned
    written: dict[str, dict[str, Any]] = {}
    try:
        for value, safe in enumerate(safe_names(names)):
            if value == 0 or not names[value]:  # "": a value the run left out (e.g. a --labels subset)
                continue
            mask = (labels == value).astype(np.uint8)[None]
            extensions = ({"json": {"label": value, "name": names[value], "model": model_name}}
                          if ext in (".nii", ".nii.gz") else None)
            info = write_verified(mask, affine, staging / f"{safe}{ext}", dtype="uint8", extensions=extensions)
            written[f"class:{names[value]}"] = {"path": f"{folder.name}/{info['path']}", "bytes": info["bytes"]}
        _swap_in(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _swap_in(staging: Path, folder: Path) -> None:
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        folder.rename(old)
    staging.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_probabilities(probs, affine: np.ndarray, path: Path) -> dict[str, Any]:
    """Probabilities as a 4D NIfTI of uint8 (probability = value / 255), one channel per class."""
    data = np.empty(tuple(probs.shape), dtype=np.uint8)
    for c in range(probs.shape[0]):  # channel by channel keeps the float copy small
        data[c] = np.rint(probs[c].float().numpy() * 255.0).clip(0, 255).astype(np.uint8)
    if data.ndim == 3:  # a 2D picture: (C, X, Y) -> (C, X, Y, 1) so NIfTI keeps C as the 4th axis
        data = data[..., None]
    info = write_verified(data, affine, path, dtype="uint8")
    info["scale"] = "probability = value / 255"
    return info


def write_soft(soft, affine: np.ndarray, path: Path) -> dict[str, Any]:
    """A regression (SAUNA) model's soft map as float32 NIfTI, foreground probability ``p = (y + 1) / 2`` in
    [0, 1] per class (3D for one class, else 4D with classes last); the labels are ``p > threshold``."""
    data = np.asarray(soft.numpy() if hasattr(soft, "numpy") else soft, dtype=np.float32)
    if data.ndim == 3:  # a 2D picture: (K, X, Y) -> (K, X, Y, 1) so NIfTI keeps K as the 4th axis
        data = data[..., None]
    info = write_verified(data, affine, path, dtype="float32")
    info["scale"] = "foreground probability p = (y + 1) / 2; y = 2p - 1 is the signed SAUNA output"
    return info


def remove_stale(files: CaseFiles) -> None:
    """Drop an old sidecar before rewriting a case, so an interrupted rewrite is never taken as complete."""
    with contextlib.suppress(FileNotFoundError):
        files.sidecar.unlink()
