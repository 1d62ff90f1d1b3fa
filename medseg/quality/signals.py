"""Shape signals of a finished label map, and the training distribution they are compared with.

Both are taken on the model's grid (the preprocessed frame: the card's spacing and intensity
normalisation), so a prediction and the training labels are measured the same way.
:func:`reference_statistics` is what the training loop stores in ``card.quality["reference"]``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.inference.stats import border_labels


def shape_signals(labels: np.ndarray, spacing: Sequence[float], channels: int) -> dict[int, dict[str, Any]]:
    """Per label value 1..channels-1: ``volume_ml``, ``components`` (26-connected), ``touches_border``."""
    labels = np.asarray(labels)
    voxel_ml = float(np.prod(list(spacing)[: labels.ndim])) / 1000.0
    counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=channels)
    boxes = ndimage.find_objects(labels.astype(np.int32, copy=False), max_label=channels - 1)
    border = border_labels(labels)
    structure = np.ones((3,) * labels.ndim, dtype=bool)
    out: dict[int, dict[str, Any]] = {}
    for c in range(1, channels):
        box = boxes[c - 1] if c - 1 < len(boxes) else None
        components = 0 if box is None else int(ndimage.label(labels[box] == c, structure=structure)[1])
        out[c] = {"volume_ml": round(float(counts[c]) * voxel_ml, 6), "components": components,
                  "touches_border": c in border}
    return out


def reference_statistics(cases: Iterable[dict], spacing: Sequence[float], names: Sequence[str]) -> dict[str, Any]:
    """Per label name: the training distribution of volume (mL, log-normal fit and 1st/99th percentile),
    component count, how often the structure is present, and mean input intensity inside it (the
    model's normalised input).

    Args:
        cases: ``{"image": (C, *S), "label": (1, *S)}`` preprocessed training cases (the model's frame).
        spacing: the model grid's voxel size in mm.
        names: label names, index = label value (index 0 = background, skipped).
    """
    k = len(names)
    volumes: list[list[float]] = [[] for _ in range(k)]
    components: list[list[int]] = [[] for _ in range(k)]
    intensity: list[list[float]] = [[] for _ in range(k)]
    n = 0
    for case in cases:
        n += 1
        label = np.asarray(case["label"])[0]
        image = np.asarray(case["image"], dtype=np.float32)[0]
        shape = shape_signals(label, spacing, k)
        for c in range(1, k):
            if shape[c]["volume_ml"] <= 0:
                continue
            volumes[c].append(shape[c]["volume_ml"])
            components[c].append(shape[c]["components"])
            intensity[c].append(float(image[label == c].mean()))
    out: dict[str, Any] = {}
    for c in range(1, k):
        if not volumes[c]:
            continue
        logs = np.log(volumes[c])
        out[str(names[c])] = {
            "cases": len(volumes[c]),
            "present_fraction": round(len(volumes[c]) / max(n, 1), 4),
            "volume_ml": {"log_mean": round(float(logs.mean()), 5), "log_std": round(float(logs.std()) or 1.0, 5),
                          "p01": round(float(np.percentile(volumes[c], 1)), 5),
                          "p99": round(float(np.percentile(volumes[c], 99)), 5)},
            "components": {"median": float(np.median(components[c])),
                           "p95": float(np.percentile(components[c], 95))},
            "intensity": {"mean": round(float(np.mean(intensity[c])), 5),
                          "std": round(float(np.std(intensity[c])) or 1.0, 5)},
        }
    return out


def compare_to_reference(signals: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """Signals relative to the training distribution of one structure: ``volume_z`` (log volume),
    ``intensity_z`` (mean normalised intensity inside), ``extra_components`` (above the 95th percentile)."""
    if not reference:
        return {}
    out: dict[str, Any] = {}
    volume = signals.get("volume_ml") or 0.0
    vol = reference["volume_ml"]
    out["volume_z"] = (round((math.log(volume) - vol["log_mean"]) / vol["log_std"], 4) if volume > 0 else None)
    mean = signals.get("intensity_mean")
    ref = reference["intensity"]
    out["intensity_z"] = None if mean is None else round((mean - ref["mean"]) / ref["std"], 4)
    out["extra_components"] = max(0, int(signals.get("components", 0)) - int(math.ceil(reference["components"]["p95"])))
    return out
