"""Back to the scan's own grid: map model-grid labels (not logits) to the input voxels.

``M = inv(A_model) @ A_input`` sends input voxel indices to model-grid indices. Preprocessing only
flips/permutes axes and rescales them, so ``M`` is a scaled permutation and nearest-neighbour lookup is
separable: one index vector per axis and a single gather (memory: the output plus one transposed copy).
Other mappings fall back to a slab-wise gather. Probabilities use linear interpolation the same way.
Soft maps of regression models (SAUNA) are interpolated linearly and thresholded on the input grid,
slab by slab, so the mask is exactly the thresholded soft map (as nnU-Net resamples probabilities).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

SLAB_VOXELS = 1 << 22


def voxel_map(model_affine: np.ndarray, input_affine: np.ndarray) -> np.ndarray:
    """4x4 matrix taking input voxel indices to model-grid voxel indices."""
    return np.linalg.inv(np.asarray(model_affine, np.float64)) @ np.asarray(input_affine, np.float64)


def _permutation(matrix: np.ndarray, tol: float = 1e-6) -> list[int] | None:
    """For each model axis r, the input axis c with ``matrix[r, c] != 0``, if the 3x3 part is a scaled permutation."""
    linear = np.abs(matrix[:3, :3])
    scale = linear.max()
    perm = []
    for r in range(3):
        nonzero = np.flatnonzero(linear[r] > tol * max(scale, 1.0))
        if len(nonzero) != 1:
            return None
        perm.append(int(nonzero[0]))
    return perm if sorted(perm) == [0, 1, 2] else None


def _nearest(coords: np.ndarray, size: int) -> np.ndarray:
    return np.clip(np.floor(coords + 0.5 + 1e-6), 0, size - 1).astype(np.int64)


def labels_to_grid(labels: torch.Tensor, model_affine: np.ndarray, input_shape: Sequence[int],
                   input_affine: np.ndarray) -> torch.Tensor:
    """Nearest-neighbour labels on the input grid ``input_shape`` (3D) from model-grid ``labels`` (3D)."""
    matrix = voxel_map(model_affine, input_affine)
    shape = tuple(int(s) for s in input_shape)
    model_shape = tuple(labels.shape)
    perm = _permutation(matrix)
    if perm is not None:
        index = [
            torch.from_numpy(_nearest(matrix[r, perm[r]] * np.arange(shape[perm[r]]) + matrix[r, 3], model_shape[r]))
            for r in range(3)
        ]
        gathered = labels[index[0][:, None, None], index[1][None, :, None], index[2][None, None, :]]
        inverse = [perm.index(c) for c in range(3)]  # result axis c <- model axis perm.index(c)
        return gathered.permute(*inverse).contiguous()
    return _labels_general(labels, matrix, shape)


def _labels_general(labels: torch.Tensor, matrix: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    out = torch.empty(shape, dtype=labels.dtype)
    flat = labels.reshape(-1)
    model_shape = np.array(labels.shape)
    strides = np.array([model_shape[1] * model_shape[2], model_shape[2], 1])
    rows = max(1, SLAB_VOXELS // (shape[0] * shape[1]))
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for k0 in range(0, shape[2], rows):
        k = np.arange(k0, min(shape[2], k0 + rows))
        grid = np.stack(np.broadcast_arrays(i[..., None], j[..., None], k[None, None, :]), 0).reshape(3, -1)
        coords = matrix[:3, :3] @ grid + matrix[:3, 3:4]
        idx = sum(_nearest(coords[r], model_shape[r]) * strides[r] for r in range(3))
        out[:, :, k0:k0 + len(k)] = flat[torch.from_numpy(idx)].reshape(shape[0], shape[1], len(k))
    return out


def _linear_slabs(probs: torch.Tensor, matrix: np.ndarray, shape: tuple[int, ...]):
    """Yield ``(k0, k1, values)``: linearly interpolated float32 ``(C, X, Y, k1 - k0)`` slabs of the input grid."""
    model_shape = probs.shape[1:]
    source = probs.float()[None]  # (1, C, X, Y, Z); grid_sample wants (x, y, z) -> (W, H, D) order
    rows = max(1, SLAB_VOXELS // (shape[0] * shape[1]))
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    denom = np.maximum(np.array(model_shape, np.float64) - 1, 1)
    for k0 in range(0, shape[2], rows):
        k = np.arange(k0, min(shape[2], k0 + rows))
        grid = np.stack(np.broadcast_arrays(i[..., None], j[..., None], k[None, None, :]), -1)
        coords = grid @ matrix[:3, :3].T + matrix[:3, 3]
        coords = np.clip(coords, 0, np.array(model_shape) - 1) / denom * 2 - 1  # align_corners=True
        g = torch.from_numpy(coords[..., ::-1].astype(np.float32).copy())[None]   # (1, X, Y, k, 3) as (z, y, x)
        sampled = F.grid_sample(source, g, mode="bilinear", align_corners=True)  # (1, C, X, Y, k)
        yield k0, k0 + len(k), sampled[0]


def probabilities_to_grid(probs: torch.Tensor, model_affine: np.ndarray, input_shape: Sequence[int],
                          input_affine: np.ndarray) -> torch.Tensor:
    """Linearly interpolated ``(C, *input_shape)`` float16 probabilities, computed in slabs."""
    shape = tuple(int(s) for s in input_shape)
    out = torch.empty((probs.shape[0], *shape), dtype=torch.float16)
    for k0, k1, values in _linear_slabs(probs, voxel_map(model_affine, input_affine), shape):
        out[..., k0:k1] = values.to(torch.float16)
    return out


def soft_to_grid(soft: torch.Tensor, model_affine: np.ndarray, input_shape: Sequence[int], input_affine: np.ndarray,
                 *, decide: Callable[[torch.Tensor], torch.Tensor], label_dtype: torch.dtype = torch.uint8,
                 keep: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels ``decide(values)`` of the linearly interpolated soft map on the input grid, and (``keep``) that
    float32 ``(K, *input_shape)`` map itself; only one slab of float32 values exists when not kept."""
    shape = tuple(int(s) for s in input_shape)
    labels = torch.empty(shape, dtype=label_dtype)
    out = torch.empty((soft.shape[0], *shape), dtype=torch.float32) if keep else None
    for k0, k1, values in _linear_slabs(soft, voxel_map(model_affine, input_affine), shape):
        labels[..., k0:k1] = decide(values)
        if out is not None:
            out[..., k0:k1] = values
    return labels, out
