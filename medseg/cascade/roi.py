"""Region of interest from a stage-1 map, and exact crop / paste-back in the full scan geometry.

A crop keeps the voxel grid: its affine is the original affine with the origin moved to the crop's first
voxel, so world coordinates of every voxel are unchanged and paste-back is a plain index assignment.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor

from medseg.core.box import Box, mask_extent


@dataclass(frozen=True)
class Roi(Box):
    """A box ``[start, stop)`` per spatial axis, in voxels of the full scan."""

    @property
    def shape(self) -> tuple[int, ...]:
        return self.size


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def spacing_of(affine: np.ndarray | torch.Tensor) -> np.ndarray:
    """Voxel spacing (mm) per axis from a 4x4 voxel-to-world affine."""
    a = np.asarray(_np(affine), dtype=np.float64)
    return np.sqrt((a[:3, :3] ** 2).sum(axis=0))


def roi_from_mask(mask: np.ndarray | torch.Tensor, spacing: Sequence[float], margin_mm: float | Sequence[float] = 10.0,
                  ) -> Roi | None:
    """Bounding box of ``mask`` (spatial, non-zero = organ) grown by ``margin_mm`` on each side and clipped
    at the scan border; ``None`` when the mask is empty (stage 1 found nothing)."""
    extent = mask_extent(_np(mask))
    if extent is None:
        return None
    return expand_roi(Roi(extent.start, extent.stop), np.shape(_np(mask)), spacing, margin_mm)


def expand_roi(roi: Roi, shape: Sequence[int], spacing: Sequence[float], margin_mm: float | Sequence[float]) -> Roi:
    """Grow ``roi`` by ``margin_mm`` (physical: more voxels along finely sampled axes), clipped at the border."""
    margin = np.broadcast_to(np.asarray(margin_mm, dtype=np.float64), (len(shape),))
    pad = np.ceil(margin / np.asarray(spacing, dtype=np.float64) - 1e-6).astype(int)
    start = tuple(max(a - int(p), 0) for a, p in zip(roi.start, pad))
    stop = tuple(min(b + int(p), int(n)) for b, p, n in zip(roi.stop, pad, shape))
    return Roi(start, stop)


def crop_affine(affine: np.ndarray | torch.Tensor, roi: Roi) -> np.ndarray:
    """The affine of the crop: same axes and spacing, origin at the crop's first voxel."""
    a = np.array(_np(affine), dtype=np.float64)
    a[:3, 3] = a[:3, :3] @ np.asarray(roi.start, dtype=np.float64) + a[:3, 3]
    return a


def crop_to_roi(image: torch.Tensor, roi: Roi) -> torch.Tensor:
    """Crop a channel-first ``(C, *spatial)`` tensor; a MetaTensor keeps meta with the shifted affine."""
    out = image[(slice(None), *roi.slices)]
    if isinstance(image, MetaTensor):
        out = MetaTensor(out.as_tensor().clone(), affine=torch.as_tensor(crop_affine(image.affine, roi)),
                         meta={k: v for k, v in image.meta.items() if k not in ("affine", "spatial_shape")})
        out.meta["spatial_shape"] = np.asarray(roi.shape)
    return out


def paste_back(crop: torch.Tensor, roi: Roi, full: torch.Tensor | Sequence[int], fill: float = 0) -> torch.Tensor:
    """Put a ``(C, *roi.shape)`` crop back at its place; ``full`` is the tensor to paste into (copied, so
    everything outside the ROI stays as it was) or a full spatial shape (then filled with ``fill``)."""
    if tuple(crop.shape[1:]) != roi.shape:
        raise ValueError(f"crop shape {tuple(crop.shape[1:])} does not match the ROI {roi.shape}")
    if isinstance(full, torch.Tensor):
        out = full.clone()
    else:
        out = torch.full((crop.shape[0], *full), fill, dtype=crop.dtype, device=crop.device)
    out[(slice(None), *roi.slices)] = crop.to(out.dtype)
    return out
