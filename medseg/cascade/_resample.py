"""Separable linear resampling between a coarse grid and (a box of) the full grid.

Both directions use the voxel-centre convention of ``torch.nn.functional.interpolate(align_corners=False)``
with ``size=``: full voxel ``j`` sits at coarse coordinate ``(j + 0.5) * n_coarse / n_full - 0.5``. This lets
the cascade upsample stage-1 probabilities *only inside the ROI* (never the whole scan at full resolution).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def coarse_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float] | None) -> tuple[int, ...]:
    """The grid size covering the same field of view at ``target`` spacing (at least 1 voxel per axis)."""
    if target is None:
        return tuple(int(s) for s in shape)
    return tuple(max(1, round(n * sp / t)) for n, sp, t in zip(shape, spacing, target))


def resize(x: torch.Tensor, size: Sequence[int], mode: str = "trilinear") -> torch.Tensor:
    """Resize a ``(C, *spatial)`` tensor to ``size`` (no-op when equal)."""
    if tuple(x.shape[1:]) == tuple(size):
        return x
    kw = {"align_corners": False} if mode in ("linear", "bilinear", "trilinear") else {}
    return F.interpolate(x[None].float(), size=tuple(int(s) for s in size), mode=mode, **kw)[0]


def _axis(x: torch.Tensor, axis: int, coords: np.ndarray) -> torch.Tensor:
    n = x.shape[axis]
    c = np.clip(coords, 0.0, n - 1.0)
    lo = np.floor(c).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = torch.as_tensor(c - lo, dtype=x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    a = x.index_select(axis, torch.as_tensor(lo))
    b = x.index_select(axis, torch.as_tensor(hi))
    return a + (b - a) * w.reshape(shape)


def upsample_box(coarse: torch.Tensor, full_shape: Sequence[int], start: Sequence[int], stop: Sequence[int]) -> torch.Tensor:
    """Linear upsampling of ``coarse`` (C, *coarse_spatial) to the full grid, evaluated only on the box
    ``[start, stop)`` of the full grid. Equal to ``resize(coarse, full_shape)[:, box]``."""
    out = coarse.float()
    for d, (n_full, a, b) in enumerate(zip(full_shape, start, stop)):
        n_c = coarse.shape[d + 1]
        j = np.arange(a, b, dtype=np.float64)
        out = _axis(out, d + 1, (j + 0.5) * n_c / n_full - 0.5)
    return out


def coarse_box_to_full(start: Sequence[int], stop: Sequence[int], coarse: Sequence[int], full: Sequence[int]
                       ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The full-grid box covered by a coarse-grid box ``[start, stop)``."""
    s = tuple(int(np.floor(a * f / c)) for a, c, f in zip(start, coarse, full))
    e = tuple(min(int(np.ceil(b * f / c)), f) for b, c, f in zip(stop, coarse, full))
    return s, e
