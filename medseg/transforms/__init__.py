"""MONAI dict transforms: card preprocessing (orientation, spacing, intensity) and target transforms
(``sauna`` soft labels). One custom transform per module; :func:`build_preprocessing` assembles a card's.
"""
from medseg.transforms.ct_normalize import CTNormalized, ct_normalize
from medseg.transforms.ensure_float import EnsureFloatd, ensure_float
from medseg.transforms.minmax_scale import MinMaxScaled, minmax_scale
from medseg.transforms.percentile_scale import PercentileScaled, percentile_scale
from medseg.transforms.presets import (
    build_preprocessing,
    intensity_transform,
    target_spacing,
)
from medseg.transforms.resample_spacing import ResampleToSpacingd, resample_to_spacing
from medseg.transforms.zscore import ZScoreNormalized, zscore

__all__ = [
    "CTNormalized", "EnsureFloatd", "MinMaxScaled", "PercentileScaled", "ResampleToSpacingd", "ZScoreNormalized",
    "build_preprocessing", "ct_normalize", "ensure_float", "intensity_transform", "minmax_scale",
    "percentile_scale", "resample_to_spacing", "target_spacing", "zscore",
]
