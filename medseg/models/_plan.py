"""nnU-Net-style U-Net topology from a patch size and voxel spacing.

The rules (nnU-Net's ``get_pool_and_conv_props``, re-stated):

- keep halving while at least one axis has ``size >= 2 * min_feature_map`` (4 voxels at the bottleneck);
- only axes whose current spacing is within 2x of the finest poolable spacing are pooled (so a 3 mm
  axis waits until the 0.8 mm axes have caught up); a lone poolable axis needs ``size >= 3 * min``;
- a conv kernel is 3 along an axis once that axis is within 2x of the finest spacing, else 1 (it stays
  3 afterwards); the bottleneck uses 3 everywhere;
- features double per stage from ``base_features`` up to ``max_features`` (nnU-Net: 32 -> 320 in 3D,
  512 in 2D);
- the patch is padded up to a multiple of the total stride per axis.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class UNetPlan:
    """Strides and kernels per stage (stage 0 has stride 1), features per stage, padded patch."""

    patch_size: tuple[int, ...]
    spacing: tuple[float, ...]
    strides: tuple[tuple[int, ...], ...]
    kernels: tuple[tuple[int, ...], ...]
    features: tuple[int, ...]

    @property
    def num_stages(self) -> int:
        return len(self.strides)

    @property
    def divisor(self) -> tuple[int, ...]:
        """Per-axis product of the strides: inputs must be multiples of it."""
        return tuple(math.prod(s[a] for s in self.strides) for a in range(len(self.patch_size)))


def plan_unet(
    patch_size: Sequence[int],
    spacing: Sequence[float] | None = None,
    *,
    min_feature_map: int = 4,
    max_pools: int = 999,
    base_features: int = 32,
    max_features: int | None = None,
    max_stages: int | None = None,
) -> UNetPlan:
    """Plan the U-Net for ``patch_size`` (voxels) at ``spacing`` (mm; isotropic when None)."""
    dims = len(patch_size)
    spacing = tuple(float(s) for s in (spacing or (1.0,) * dims))
    if len(spacing) != dims:
        raise ValueError(f"spacing {spacing} must have {dims} entries like patch_size {tuple(patch_size)}")
    if max_features is None:
        max_features = 320 if dims == 3 else 512
    size = [float(s) for s in patch_size]
    current = list(spacing)
    pools = [0] * dims
    kernel = [1] * dims
    strides: list[tuple[int, ...]] = [(1,) * dims]
    kernels: list[tuple[int, ...]] = []
    while max_stages is None or len(strides) < max_stages:
        candidates = [a for a in range(dims) if size[a] >= 2 * min_feature_map and pools[a] < max_pools]
        if not candidates:
            break
        finest = min(current[a] for a in candidates)
        candidates = [a for a in candidates if current[a] / finest < 2]
        if len(candidates) == 1 and size[candidates[0]] < 3 * min_feature_map:
            break
        finest_all = min(current)
        kernel = [3 if kernel[a] == 3 or current[a] / finest_all < 2 else 1 for a in range(dims)]
        kernels.append(tuple(kernel))
        stride = tuple(2 if a in candidates else 1 for a in range(dims))
        for a in candidates:
            pools[a] += 1
            current[a] *= 2
            size[a] = math.ceil(size[a] / 2)
        strides.append(stride)
    kernels.append((3,) * dims)
    divisor = [math.prod(s[a] for s in strides) for a in range(dims)]
    padded = tuple(int(math.ceil(p / d) * d) for p, d in zip(patch_size, divisor))
    features = tuple(min(base_features * 2 ** i, max_features) for i in range(len(strides)))
    return UNetPlan(patch_size=padded, spacing=spacing, strides=tuple(strides), kernels=tuple(kernels),
                    features=features)
