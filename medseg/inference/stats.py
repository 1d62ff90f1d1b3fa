"""Per-structure statistics of a label map: voxels, volume (mL), mean intensity, border contact.

Counts and intensity sums come from ``bincount`` over slabs, so memory stays at one slab of float64
weights whatever the scan size. ``touches_border`` flags structures cut by the field of view (their
volume is a lower bound), as TotalSegmentator warns, but they are reported rather than dropped.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.core.atomic import atomic_write_text

SLAB_VOXELS = 1 << 23
FIELDS = ("label", "name", "voxels", "volume_ml", "mean_intensity", "touches_border")
QUALITY_FIELDS = ("predicted_dice", "quality_flag", "tta_dice", "confidence", "out_of_domain")


def border_labels(labels: np.ndarray) -> set[int]:
    """Label values present on any face of the array."""
    found: set[int] = set()
    for axis in range(labels.ndim):
        if labels.shape[axis] == 1:
            continue  # a single-slice axis has no meaningful border along it
        for index in (0, -1):
            found.update(int(v) for v in np.unique(np.take(labels, index, axis=axis)))
    return found


def label_statistics(labels: np.ndarray, image: np.ndarray | None, spacing: Sequence[float],
                     names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per foreground class in ``names`` (index = label value; index 0 is background).

    Args:
        labels: integer label map.
        image: the scan's first channel on the same grid (None: no mean intensity).
        spacing: voxel size in mm per axis.
        names: class names; classes absent from the map get 0 voxels and no mean.
    """
    count = max(len(names), int(labels.max()) + 1 if labels.size else 1)
    voxels = np.zeros(count, dtype=np.int64)
    sums = np.zeros(count, dtype=np.float64)
    flat_labels = labels.reshape(-1)
    flat_image = None if image is None else image.reshape(-1)
    for start in range(0, flat_labels.size, SLAB_VOXELS):
        chunk = flat_labels[start:start + SLAB_VOXELS].astype(np.int64, copy=False)
        voxels += np.bincount(chunk, minlength=count)[:count]
        if flat_image is not None:
            weights = flat_image[start:start + SLAB_VOXELS].astype(np.float64)
            sums += np.bincount(chunk, weights=weights, minlength=count)[:count]
    voxel_ml = float(np.prod(spacing[: labels.ndim])) / 1000.0
    border = border_labels(labels)
    rows = []
    for value in range(1, count):
        if value < len(names) and not names[value] and not voxels[value]:
            continue  # "": a value the run left out (e.g. a --labels subset)
        n = int(voxels[value])
        rows.append({
            "label": value,
            "name": names[value] if value < len(names) else f"label_{value}",
            "voxels": n,
            "volume_ml": round(n * voxel_ml, 6),
            "mean_intensity": (round(float(sums[value] / n), 4) if n and flat_image is not None else None),
            "touches_border": value in border,
        })
    return rows


def with_quality_columns(rows: list[dict[str, Any]], quality: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rows with the quality estimate of each structure (:mod:`medseg.quality`) as extra columns."""
    if not quality:
        return rows
    for row in rows:
        entry = quality.get(row["name"]) or {}
        signals = entry.get("signals") or {}
        row.update({"predicted_dice": entry.get("predicted_dice"), "quality_flag": entry.get("flag"),
                    "tta_dice": signals.get("tta_dice"), "confidence": signals.get("confidence"),
                    "out_of_domain": ";".join(signals.get("out_of_domain") or []) or None})
    return rows


def write_statistics(rows: list[dict[str, Any]], csv_path, json_path, *, extra: dict[str, Any] | None = None) -> None:
    """Write the rows as CSV and as JSON (``{"structures": rows, **extra}``), atomically."""
    buffer = io.StringIO()
    fields = FIELDS + tuple(k for k in QUALITY_FIELDS if rows and k in rows[0])
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    atomic_write_text(csv_path, buffer.getvalue())
    atomic_write_text(json_path, json.dumps({**(extra or {}), "structures": rows}, indent=1))
