"""A JSON-ready description of a scan (used by ``medseg info``)."""
from __future__ import annotations

from os import PathLike
from typing import Any

import numpy as np

from medseg.core.errors import MedsegError
from medseg.io.geometry import orientation_code, spacing_from_affine
from medseg.io.header import read_header
from medseg.io.readers import read_array

MAX_LABELS = 1000  # more distinct values than this is an intensity image, whatever else it looks like
MAX_LABEL_VALUE = 65535
MIN_COHERENCE = 0.5  # label maps: ~0.8 of neighbour pairs touching foreground agree; images: < 0.15
_CHUNK = 1 << 24


def describe(path: str | PathLike, *, frame: int | None = None, series: str | None = None,
             header_only: bool = False) -> dict[str, Any]:
    """shape, spacing, affine (4x4 RAS), orientation, dtype, min, max, channels, and labels for label maps.

    ``header_only``: only what the header says (no voxel data read; NIfTI and ITK formats), for huge or
    suspicious files. Otherwise the header is checked first (see :mod:`medseg.io.header`), then voxels read.
    """
    if header_only:
        return describe_header(path)
    array, affine, meta = read_array(path, frame=frame, series=series, allow_multichannel=True)
    ndim = array.ndim - 1
    floating = array.dtype.kind == "f"
    finite_mask = np.isfinite(array) if floating else None
    finite = array[finite_mask] if floating else array
    as_number = float if floating else int
    summary: dict[str, Any] = {
        "path": str(path),
        "shape": list(meta["spatial_shape"]),
        "channels": int(array.shape[0]),
        "spacing": [round(s, 6) for s in spacing_from_affine(affine, ndim)],
        "orientation": orientation_code(affine),
        "affine": affine.tolist(),
        "dtype": meta["original_dtype"],
        "min": as_number(finite.min()) if finite.size else None,
        "max": as_number(finite.max()) if finite.size else None,
    }
    if floating:
        summary["non_finite"] = int(array.size - finite.size)
    if array.shape[0] == 1 and (not floating or summary["non_finite"] == 0):
        labels = label_values(array[0])
        if labels is not None:
            summary["num_labels"] = len(labels)
            summary["labels"] = labels
    return summary


def describe_header(path: str | PathLike) -> dict[str, Any]:
    """What the header of a NIfTI/ITK file says, without reading any voxel data."""
    header = read_header(path)
    if header is None:
        raise MedsegError("header-only description is offered for NIfTI and ITK files (NRRD, MetaImage, ...)",
                          path=path, hint="drop --header-only")
    ndim = min(len(header.shape), 3)
    return {
        "path": str(path), "shape": list(header.shape), "channels": header.components,
        "spacing": [round(s, 6) for s in header.spacing], "orientation": orientation_code(header.affine),
        "affine": header.affine.tolist(), "dtype": header.dtype, "bytes_claimed": header.data_bytes,
        "spatial_dims": ndim,
    }


def label_values(array: np.ndarray) -> list[int] | None:
    """The non-zero values of ``array`` if it looks like a label map, else None.

    A label map is integer-valued, non-negative, has at most :data:`MAX_LABELS` distinct values, and is
    spatially coherent: most neighbour pairs that touch a non-zero voxel hold the same value (intensity
    images, even 8-bit probability maps, vary from voxel to voxel).
    """
    if array.size == 0 or array.dtype.kind not in "iubf":
        return None
    lo, hi = array.min(), array.max()
    if lo < 0 or hi > MAX_LABEL_VALUE:
        return None
    if array.dtype.kind == "f" and not _integral(array):
        return None
    if _coherence(array) < MIN_COHERENCE:
        return None
    counts = np.zeros(int(hi) + 1, dtype=np.int64)
    flat = array.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        counts += np.bincount(flat[start:start + _CHUNK].astype(np.int64), minlength=counts.size)
    values = np.flatnonzero(counts)
    if len(values) > MAX_LABELS:
        return None
    return [int(v) for v in values if v != 0]


def looks_like_labels(array: np.ndarray) -> bool:
    """True when :func:`label_values` recognises ``array`` as a label map."""
    return label_values(array) is not None


def _integral(array: np.ndarray) -> bool:
    flat = array.reshape(-1)
    return all(np.array_equal(part, np.round(part)) for part in
               (flat[s:s + _CHUNK] for s in range(0, flat.size, _CHUNK)))


def _coherence(array: np.ndarray) -> float:
    """Share of neighbour pairs (along the first axis) touching a non-zero voxel whose values agree."""
    if array.shape[0] < 2:
        return 1.0
    step = max(1, int(np.ceil(array.size / _CHUNK)))
    sample = array[..., ::step] if array.ndim > 1 else array
    a, b = sample[1:], sample[:-1]
    touching = (a != 0) | (b != 0)
    total = int(np.count_nonzero(touching))
    return 1.0 if total == 0 else int(np.count_nonzero((a == b) & touching)) / total
