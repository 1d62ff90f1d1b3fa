"""Dataset fingerprint and training plan, the nnU-Net way.

``fingerprint(dataset)`` reads every case once and records spacings, shapes, foreground intensity
statistics and label voxel counts. ``make_plan(fp, card)`` turns it into a plan: target spacing (median;
for anisotropic data the coarse axis takes the 10th percentile, as nnU-Net does), patch size (median
shape at that spacing, shrunk to a voxel budget and rounded to the card's divisibility), the intensity
scheme (CT: clip to the foreground's 0.5-99.5 percentiles, then z-score with the foreground statistics;
otherwise per-image z-score) and a batch size. Training writes both as ``plan.json``.
"""
from __future__ import annotations

import math

import numpy as np

from medseg.core.card import Intensity, ModelCard
from medseg.io import read_image
from medseg.training.datalist import Dataset

DEFAULT_VOXEL_BUDGET = 128 ** 3 * 2   # patch voxels x batch that fit nnU-Net's default GPU budget
ANISOTROPY = 3.0


def fingerprint(dataset: Dataset, *, max_samples_per_case: int = 10_000, seed: int = 0) -> dict:
    """Spacings, shapes, foreground intensity statistics and label counts of every case."""
    rng = np.random.default_rng(seed)
    spacings, shapes, samples, counts = [], [], [], {}
    for case in dataset.cases:
        image = read_image(case["image"], allow_multichannel=True)
        label = read_image(case["label"]).as_tensor().numpy()[0]
        spacings.append([float(s) for s in image.meta["spacing"]])
        shapes.append([int(s) for s in image.shape[1:]])
        values = image.as_tensor().numpy()[0][label > 0]
        if values.size:
            samples.append(rng.choice(values, min(values.size, max_samples_per_case), replace=False))
        for value, n in zip(*np.unique(label, return_counts=True)):
            counts[int(value)] = counts.get(int(value), 0) + int(n)
    fg = np.concatenate(samples).astype(np.float64) if samples else np.zeros(1)
    return {
        "cases": len(dataset.cases),
        "spacings": spacings,
        "shapes": shapes,
        "modality": dataset.channel_names[0] if dataset.channel_names else "image",
        "foreground_intensity": {
            "mean": float(fg.mean()), "std": float(fg.std()), "min": float(fg.min()), "max": float(fg.max()),
            "p00_5": float(np.percentile(fg, 0.5)), "p99_5": float(np.percentile(fg, 99.5)),
        },
        "label_voxels": {str(k): v for k, v in sorted(counts.items())},
    }


def target_spacing(spacings: list[list[float]]) -> list[float]:
    """Median spacing; when one axis is over 3x coarser than the finest, use its 10th percentile instead."""
    arr = np.asarray(spacings, dtype=np.float64)
    target = np.median(arr, axis=0)
    coarse = int(np.argmax(target))
    if target[coarse] > ANISOTROPY * target.min():
        target[coarse] = np.percentile(arr[:, coarse], 10)
    return [round(float(t), 4) for t in target]


def make_plan(fp: dict, card: ModelCard, *, voxel_budget: int = DEFAULT_VOXEL_BUDGET, batch_size: int = 2) -> dict:
    """A training plan (target spacing, patch size, intensity scheme, batch size) from a fingerprint."""
    spacing = target_spacing(fp["spacings"])
    shapes = np.asarray(fp["shapes"], dtype=np.float64) * np.asarray(fp["spacings"]) / np.asarray(spacing)
    patch = np.median(shapes, axis=0)
    while np.prod(patch) * batch_size > voxel_budget:
        patch[int(np.argmax(patch * np.asarray(spacing)))] *= 0.9   # shrink the physically longest axis
    d = card.divisible_by
    patch = [max(d, int(math.ceil(p / d)) * d) for p in patch]
    modality = str(fp.get("modality", "")).upper()
    stats = fp["foreground_intensity"]
    if modality == "CT":
        intensity = Intensity("ct", low=stats["p00_5"], high=stats["p99_5"], mean=stats["mean"], std=stats["std"])
    else:
        intensity = Intensity("zscore")
    return {"spacing": spacing, "roi_size": patch, "batch_size": batch_size,
            "intensity": {"kind": intensity.kind, "low": intensity.low, "high": intensity.high,
                          "mean": intensity.mean, "std": intensity.std}}
