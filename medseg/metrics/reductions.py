"""From surface distances to Hausdorff, HD95, ASSD, mean surface distances and NSD, per convention.

``monai`` reproduces MONAI 1.6.1 bit for bit: distances are rounded to float32 as MONAI stores them, the
95th percentile is ``torch.quantile`` (linear interpolation between order statistics, float32), means are
float32 torch means and the NSD tolerance is compared in float32.

``surface-distance`` follows DeepMind's surface-distance in float64: every surfel is weighted by its
area, the robust Hausdorff takes, per direction, the smallest distance whose cumulative area fraction
reaches the percentile, and the surface Dice counts surfel area within the tolerance.
"""
from __future__ import annotations

import numpy as np

from medseg.metrics.surface import SurfaceDistances

# torch.quantile refuses larger inputs; beyond it the same interpolation runs in numpy
_TORCH_QUANTILE_MAX = 1 << 24


def monai_reduce(d: SurfaceDistances, tolerance: float, percentile: float = 95.0) -> dict[str, float]:
    """hd, hd95, assd, msd_pred_to_ref, msd_ref_to_pred and nsd exactly as MONAI computes them."""
    import torch

    a = torch.from_numpy(d.pred_to_ref.astype(np.float32))
    b = torch.from_numpy(d.ref_to_pred.astype(np.float32))
    tol = np.float32(tolerance)
    correct = int(np.count_nonzero(d.pred_to_ref.astype(np.float32) <= tol))
    correct += int(np.count_nonzero(d.ref_to_pred.astype(np.float32) <= tol))
    return {
        "hd": float(torch.maximum(a.max(), b.max())),
        "hd95": max(_quantile32(a, percentile), _quantile32(b, percentile)),
        "assd": float(torch.cat((a, b)).mean()),
        "msd_pred_to_ref": float(a.mean()),
        "msd_ref_to_pred": float(b.mean()),
        "nsd": correct / (len(a) + len(b)),
    }


def _quantile32(values, percentile: float) -> float:
    """``torch.quantile(values, percentile / 100)`` (linear), with a float32 numpy fallback for huge inputs."""
    import torch

    if values.numel() <= _TORCH_QUANTILE_MAX:
        return float(torch.quantile(values, percentile / 100))
    x = values.numpy()
    rank = np.float32(percentile / 100) * np.float32(len(x) - 1)
    low, high = int(np.floor(rank)), int(np.ceil(rank))
    part = np.partition(x, [low, high])
    v_low, v_high, w = part[low], part[high], rank - np.float32(low)
    return float(v_low + w * (v_high - v_low) if w < 0.5 else v_high - (v_high - v_low) * (np.float32(1) - w))


def surfel_reduce(d: SurfaceDistances, tolerance: float, percentile: float = 95.0) -> dict[str, float]:
    """The same six numbers with DeepMind's surfel-area weighting (float64)."""
    pa, ra = d.pred_areas, d.ref_areas
    assert pa is not None and ra is not None, "surfel areas are needed for the surface-distance convention"
    total = pa.sum() + ra.sum()
    near = pa[d.pred_to_ref <= tolerance].sum() + ra[d.ref_to_pred <= tolerance].sum()
    return {
        "hd": float(max(d.pred_to_ref.max(), d.ref_to_pred.max())),
        "hd95": max(_robust_percentile(d.pred_to_ref, pa, percentile),
                    _robust_percentile(d.ref_to_pred, ra, percentile)),
        "assd": float((np.dot(d.pred_to_ref, pa) + np.dot(d.ref_to_pred, ra)) / total),
        "msd_pred_to_ref": float(np.dot(d.pred_to_ref, pa) / pa.sum()),
        "msd_ref_to_pred": float(np.dot(d.ref_to_pred, ra) / ra.sum()),
        "nsd": float(near / total),
    }


def _robust_percentile(distances: np.ndarray, areas: np.ndarray, percentile: float) -> float:
    """Smallest distance at which the cumulative surfel area (sorted by distance, then area) reaches p%."""
    order = np.lexsort((areas, distances))
    sorted_areas = areas[order]
    cumulative = np.cumsum(sorted_areas) / np.sum(sorted_areas)
    index = min(int(np.searchsorted(cumulative, percentile / 100.0)), len(distances) - 1)
    return float(distances[order][index])
