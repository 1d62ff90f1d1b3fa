"""From surface distances to Hausdorff, HD95, ASSD, mean surface distances and NSD, per convention.

``monai`` reproduces MONAI 1.6.1 bit for bit: distances are rounded to float32 as MONAI stores them, the
95th percentile is ``torch.quantile``'s (linear interpolation between order statistics, float32), means
are torch's float32 means (both repeated in numpy, :mod:`medseg.metrics.float32`) and the NSD tolerance
is compared in float32.

``surface-distance`` follows DeepMind's surface-distance in float64: every surfel is weighted by its
area, the robust Hausdorff takes, per direction, the smallest distance whose cumulative area fraction
reaches the percentile, and the surface Dice counts surfel area within the tolerance.
"""
from __future__ import annotations

import numpy as np

from medseg.metrics.float32 import mean32, quantile32
from medseg.metrics.surface import SurfaceDistances


def monai_reduce(d: SurfaceDistances, tolerance: float, percentile: float = 95.0) -> dict[str, float]:
    """hd, hd95, assd, msd_pred_to_ref, msd_ref_to_pred and nsd exactly as MONAI computes them.

    MONAI's float32 torch reductions are repeated in numpy (:mod:`medseg.metrics.float32`), so scoring
    needs neither torch nor MONAI. Means use torch's single-thread summation order (evaluation workers
    run torch with one thread); with several threads torch's own order differs above 32768 points.
    """
    a = d.pred_to_ref.astype(np.float32)
    b = d.ref_to_pred.astype(np.float32)
    tol = np.float32(tolerance)
    correct = int(np.count_nonzero(a <= tol)) + int(np.count_nonzero(b <= tol))
    return {
        "hd": float(max(a.max(), b.max())),
        "hd95": max(quantile32(a, percentile / 100), quantile32(b, percentile / 100)),
        "assd": mean32(np.concatenate((a, b))),
        "msd_pred_to_ref": mean32(a),
        "msd_ref_to_pred": mean32(b),
        "nsd": correct / (len(a) + len(b)),
    }


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
