"""Segmentation metrics with explicit definitions: overlap, volumes and spacing-aware surface distances.

``compute_metrics(pred, ref, spacing)`` returns one :class:`LabelMetrics` per label. Two conventions:
``"monai"`` (default, MONAI 1.6.1's numbers) and ``"surface-distance"`` (DeepMind's surfel-area weighted
numbers). ``definitions(convention, tolerance)`` states every formula in words.
"""
from medseg.metrics.definitions import (
    CONVENTIONS,
    DISTANCE_METRICS,
    EMPTY_RULE,
    METRICS,
    definitions,
)
from medseg.metrics.segmentation import LabelMetrics, compute_metrics

__all__ = ["CONVENTIONS", "DISTANCE_METRICS", "EMPTY_RULE", "METRICS", "LabelMetrics", "compute_metrics", "definitions"]
