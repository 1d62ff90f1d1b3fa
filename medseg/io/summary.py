"""A JSON-ready description of a scan (used by ``medseg info``)."""
from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np

from medseg.io.geometry import orientation_code, spacing_from_affine
from medseg.io.readers import read_image

MAX_LABELS = 256


def describe(path: str | PathLike, *, frame: int | None = None, series: str | None = None) -> dict[str, Any]:
    """shape, spacing, affine (4x4 RAS), orientation, dtype, min, max, channels, and labels if integer-valued."""
    image = read_image(path, frame=frame, series=series, allow_multichannel=True)
    array = image.as_tensor().numpy()
    affine = image.affine.numpy()
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
    summary: dict[str, Any] = {
        "shape": list(image.meta["spatial_shape"]),
        "channels": int(array.shape[0]),
        "spacing": [round(s, 6) for s in spacing_from_affine(affine)],
        "orientation": orientation_code(affine),
        "affine": np.round(affine, 6).tolist(),
        "dtype": image.meta["original_dtype"],
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
    }
    if array.dtype.kind == "f":
        summary["non_finite"] = int(array.size - finite.size)
    integral = array.dtype.kind in "iub" or (finite.size and np.array_equal(finite, np.round(finite)))
    if integral and finite.size and looks_like_labels(finite):
        values = [int(v) for v in np.unique(finite) if v != 0]
        summary["num_labels"] = len(values)
        summary["labels"] = values
    return summary


def looks_like_labels(values: np.ndarray) -> bool:
    """Integer-valued, non-negative, at most 256 distinct values, and mostly background (0)."""
    if values.min() < 0 or np.count_nonzero(values == 0) < 0.5 * values.size:
        return False
    return len(np.unique(values)) <= MAX_LABELS
