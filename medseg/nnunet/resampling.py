"""nnU-Net v2's resampling rule, reimplemented with scikit-image and scipy.

Third-order spline (``skimage.transform.resize``, mode ``edge``, no anti-aliasing) for images, first order
for logits at export; when the spacing ratio exceeds ``ANISO_THRESHOLD`` along one axis, each slice is
resized in-plane first, then that coarse axis is resampled with ``order_z`` (0: nearest) through
``scipy.ndimage.map_coordinates`` (align-corners-false coordinates, mode ``nearest``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import map_coordinates
from skimage.transform import resize

ANISO_THRESHOLD = 3.0


def new_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> list[int]:
    """Shape after resampling from ``spacing`` to ``target`` (Python rounding, as nnU-Net)."""
    return [round(s / t * n) for s, t, n in zip(spacing, target, shape)]


def _coarse_axis(spacing: Sequence[float]) -> int | None:
    spacing = np.asarray(spacing, dtype=float)
    if spacing.max() / spacing.min() <= ANISO_THRESHOLD:
        return None
    axes = np.where(spacing.max() / spacing == 1)[0]
    return int(axes[0]) if len(axes) == 1 else None


def separate_axis(current: Sequence[float], target: Sequence[float], force: bool | None = None) -> int | None:
    """The axis resampled on its own (nnU-Net's ``determine_do_sep_z_and_axis``), or None."""
    if force is not None:
        if not force:
            return None
        spacing = np.asarray(current, dtype=float)
        axes = np.where(spacing.max() / spacing == 1)[0]
        return int(axes[0]) if len(axes) == 1 else None
    axis = _coarse_axis(current)
    return axis if axis is not None else _coarse_axis(target)


def resample(data: np.ndarray, shape: Sequence[int], current: Sequence[float], target: Sequence[float], *,
             order: int = 3, order_z: int = 0, force_separate_z: bool | None = False,
             dtype: np.dtype | None = None) -> np.ndarray:
    """Resample ``(C, *spatial)`` to ``shape`` (the rule of nnU-Net's ``resample_data_or_seg``, not for labels).

    Returns ``data`` itself when the shape does not change; otherwise an array of ``dtype`` (default: the
    input's), computed in float64 as nnU-Net does.
    """
    shape = np.asarray([int(s) for s in shape])
    old = np.asarray(data.shape[1:])
    dtype = data.dtype if dtype is None else dtype
    if np.all(old == shape):
        return data
    axis = separate_axis(current, target, force_separate_z)
    out = np.zeros((data.shape[0], *shape), dtype=dtype)
    work = data.astype(float, copy=False)
    kwargs = {"mode": "edge", "anti_aliasing": False}
    for c in range(data.shape[0]):
        if axis is None:
            out[c] = resize(work[c], shape, order, **kwargs)
            continue
        tmp = _per_slice(work[c], shape, axis, lambda sl, plane: resize(sl, plane, order, **kwargs))
        if old[axis] == shape[axis]:
            out[c] = tmp
            continue
        out[c] = map_coordinates(tmp, _axis_coords(tmp.shape, shape), order=order_z, mode="nearest")
    return out


def _per_slice(volume: np.ndarray, shape: Sequence[int], axis: int,
               resize_2d: Callable[[np.ndarray, list[int]], np.ndarray]) -> np.ndarray:
    """Each slice across ``axis`` resized in-plane to ``shape`` (``axis`` keeps its length), float64."""
    plane = [int(s) for a, s in enumerate(shape) if a != axis]
    tmp_shape = [int(s) for s in shape]
    tmp_shape[axis] = volume.shape[axis]
    tmp = np.zeros(tmp_shape)
    for k in range(volume.shape[axis]):
        index: list[slice | int] = [slice(None)] * 3
        index[axis] = k
        tmp[tuple(index)] = resize_2d(volume[tuple(index)], plane)
    return tmp


def _axis_coords(old_shape: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Sample coordinates of ``shape``'s voxels in an array of ``old_shape`` (centres aligned), for the
    separate axis's own interpolation."""
    grids = np.mgrid[:shape[0], :shape[1], :shape[2]].astype(float)
    return np.array([float(o) / n * (g + 0.5) - 0.5 for o, n, g in zip(old_shape, shape, grids)])


def _resize_labels(seg: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """batchgenerators' ``resize_segmentation``: each label's indicator resized (``order``), the per-voxel
    winner the first label with the top score, except that the nearest-neighbour label wins when it ties."""
    if order == 0:
        return resize(seg, shape, 0, mode="edge", clip=True, anti_aliasing=False)
    labels = np.unique(seg)
    if labels.size == 1:
        return np.full(shape, labels[0], dtype=seg.dtype)
    nearest = resize(seg, shape, 0, mode="edge", clip=True, anti_aliasing=False)
    win = np.zeros(shape, dtype=seg.dtype)
    best = None
    nn_score = np.zeros(shape)
    for c in labels:
        score = resize((seg == c).astype(float), shape, order, mode="edge", clip=True, anti_aliasing=False)
        at_nn = nearest == c
        nn_score[at_nn] = score[at_nn]
        if best is None:
            best, win[...] = score, c
            continue
        better = score > best
        win[better] = c
        np.maximum(best, score, out=best)
    tie = (nn_score == best) & (nn_score > 0)
    win[tie] = nearest[tie]
    return win


def resample_seg(seg: np.ndarray, shape: Sequence[int], current: Sequence[float], target: Sequence[float], *,
                 order: int = 1, order_z: int = 0, force_separate_z: bool | None = False) -> np.ndarray:
    """Resample a label map ``(C, *spatial)`` the way nnU-Net's ``resample_data_or_seg(is_seg=True)`` does
    (cascade input: the previous stage's labels onto this stage's grid). Float64 work, output of seg's dtype."""
    shape = np.asarray([int(s) for s in shape])
    old = np.asarray(seg.shape[1:])
    if np.all(old == shape):
        return seg
    axis = separate_axis(current, target, force_separate_z)
    out = np.zeros((seg.shape[0], *shape), dtype=seg.dtype)
    work = seg.astype(float, copy=False)
    for c in range(seg.shape[0]):
        if axis is None:
            out[c] = _resize_labels(work[c], shape, order)
            continue
        tmp = _per_slice(work[c], shape, axis, lambda sl, plane: _resize_labels(sl, plane, order))
        if old[axis] == shape[axis]:
            out[c] = tmp
            continue
        coords = _axis_coords(tmp.shape, shape)
        if order_z == 0:
            out[c] = map_coordinates(tmp, coords, order=0, mode="nearest")
        else:
            for label in np.unique(tmp):
                hit = np.round(map_coordinates((tmp == label).astype(float), coords, order=order_z,
                                               mode="nearest")) > 0.5
                out[c][hit] = label
    return out
