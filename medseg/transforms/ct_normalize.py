"""CTNormalized: clip to a fixed HU window, then (x - mean) / std with fixed dataset statistics.

Without ``mean``/``std`` the window is mapped to [-1, 1] (mean = centre, std = half width).
"""
from __future__ import annotations

import torch
from monai.config import KeysCollection

from medseg.transforms._util import FunctionDict, as_plain, like


def ct_normalize(image: torch.Tensor, low: float | None, high: float | None, mean: float | None = None,
                 std: float | None = None, *, inplace: bool = False) -> torch.Tensor:
    """Clip to [low, high] HU (either may be None), then standardise with fixed statistics."""
    data = as_plain(image)
    data = data if inplace else data.to(torch.float32, copy=True)
    if low is not None or high is not None:
        data.clamp_(low, high)
    if mean is None or std is None:
        if low is None or high is None:
            return like(data, image)
        mean = (low + high) / 2.0 if mean is None else mean
        std = (high - low) / 2.0 if std is None else std
    data.sub_(float(mean)).div_(max(float(std), 1e-8))
    return like(data, image)


class CTNormalized(FunctionDict):
    """Dict transform around :func:`ct_normalize`."""

    function = staticmethod(ct_normalize)

    def __init__(self, keys: KeysCollection, low: float | None, high: float | None, mean: float | None = None,
                 std: float | None = None, inplace: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys, low=low, high=high, mean=mean, std=std,
                         inplace=inplace)
