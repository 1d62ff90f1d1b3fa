"""Shape signals of a finished label map, and the training distribution they are compared with.

Both are taken on the model's grid (the preprocessed frame: the card's spacing and intensity
normalisation), so a prediction and the training labels are measured the same way.
:func:`reference_statistics` is what the training loop stores in ``card.quality["reference"]``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.inference.stats import border_labels


def shape_signals(labels: np.ndarray, spacing: Sequence[float], channels: int) -> dict[int, dict[str, Any]]:
    """Per label value 1..channels-1: ``volume_ml``, ``share`` (its fraction of the foreground volume: the
    structures' sizes relative to each other), ``components`` (26-connected), ``touches_border``."""
    labels = np.asarray(labels)
    voxel_ml = float(np.prod(list(spacing)[: labels.ndim])) / 1000.0
    counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=channels)
    boxes = ndimage.find_objects(labels.astype(np.int32, copy=False), max_label=channels - 1)
    border = border_labels(labels)
    foreground = float(counts[1:channels].sum())
    structure = np.ones((3,) * labels.ndim, dtype=bool)
    out: dict[int, dict[str, Any]] = {}
    for c in range(1, channels):
        box = boxes[c - 1] if c - 1 < len(boxes) else None
        components = 0 if box is None else int(ndimage.label(labels[box] == c, structure=structure)[1])
        out[c] = {"volume_ml": round(float(counts[c]) * voxel_ml, 6),
                  "share": round(float(counts[c]) / foreground, 6) if foreground > 0 else None,
                  "components": components, "touches_border": c in border}
    return out


def reference_statistics(cases: Iterable[dict], spacing: Sequence[float], names: Sequence[str]) -> dict[str, Any]:
    """Per label name: the training distribution of volume (mL, log-normal fit and 1st/99th percentile),
    share of the foreground volume, component count, how often the structure is present, and inside it
    the mean and SD of the model's normalised input and its squared neighbour differences along each axis
    (log; :func:`medseg.quality.probe.axis_gradient_energy`: the sharpness and noise of training scans).

    Args:
        cases: ``{"image": (C, *S), "label": (1, *S)}`` preprocessed training cases (the model's frame).
        spacing: the model grid's voxel size in mm.
        names: label names, index = label value (index 0 = background, skipped).
    """
    import torch

    from medseg.quality.probe import axis_gradient_energy

    k = len(names)
    volumes: list[list[float]] = [[] for _ in range(k)]
    shares: list[list[float]] = [[] for _ in range(k)]
    components: list[list[int]] = [[] for _ in range(k)]
    intensity: list[list[float]] = [[] for _ in range(k)]
    spread: list[list[float]] = [[] for _ in range(k)]
    gradient: list[list[list[float]]] = [[] for _ in range(k)]
    n = 0
    for case in cases:
        n += 1
        label = np.asarray(case["label"])[0]
        image = np.asarray(case["image"], dtype=np.float32)[0]
        energy = axis_gradient_energy(torch.from_numpy(np.ascontiguousarray(image))[None])[:, 0].numpy() \
            if image.ndim == 3 else None
        shape = shape_signals(label, spacing, k)
        for c in range(1, k):
            if shape[c]["volume_ml"] <= 0:
                continue
            inside = label == c
            volumes[c].append(shape[c]["volume_ml"])
            shares[c].append(shape[c]["share"])
            components[c].append(shape[c]["components"])
            intensity[c].append(float(image[inside].mean()))
            spread[c].append(float(image[inside].std()))
            if energy is not None:
                gradient[c].append([math.log(max(float(e[inside].mean()), 1e-12)) for e in energy])
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
            "share": _mean_std(shares[c]),
            "intensity_std": _mean_std(spread[c]),
        }
        if gradient[c]:
            g = np.asarray(gradient[c])
            out[str(names[c])]["log_gradient"] = {"mean": [round(float(v), 5) for v in g.mean(0)],
                                                  "std": [round(float(v) or 1.0, 5) for v in g.std(0)]}
    return out


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 5), "std": round(float(np.std(values)) or 1.0, 5)}


def compare_to_reference(signals: Mapping[str, Any], reference: Mapping[str, Any] | None) -> dict[str, Any]:
    """Signals relative to the training distribution of one structure: ``volume_z`` (log volume),
    ``share_z`` (its share of the foreground), ``intensity_z`` / ``intensity_std_z`` (mean and SD of the
    normalised intensity inside), ``gradient_z`` (log squared neighbour differences inside, on the least
    sharp axis: blur, thick slices or a smooth bias field < 0, noise > 0), ``extra_components`` (above the
    95th percentile). Fields a reference lacks (older cards) give None."""
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
    out["share_z"] = _z(signals.get("share"), reference.get("share"))
    out["intensity_std_z"] = _z(signals.get("intensity_std"), reference.get("intensity_std"))
    out["gradient_z"] = None
    grad = reference.get("log_gradient")
    values: list[Any] = [signals.get(f"gradient_{a}") for a in range(3)]
    if grad and all(v is not None and v > 0 for v in values):
        zs = [(math.log(v) - m) / s for v, m, s in zip(values, grad["mean"], grad["std"])]
        out["gradient_z"] = round(min(zs), 4)
    return out


def _z(value: float | None, reference: dict[str, float] | None) -> float | None:
    if value is None or not reference:
        return None
    return round((float(value) - reference["mean"]) / reference["std"], 4)
