"""PercentileScaled: clip each channel to its [low, high] percentiles and rescale that range to [0, 1]."""
from __future__ import annotations

import torch
from monai.config import KeysCollection

from medseg.transforms._util import FunctionDict, as_plain, like, percentiles

DEFAULT_LOW, DEFAULT_HIGH = 0.5, 99.5


def percentile_scale(image: torch.Tensor, low: float | None = None, high: float | None = None, *,
                     inplace: bool = False) -> torch.Tensor:
    """Per channel: clip to the percentiles (defaults 0.5 / 99.5), then map that range to [0, 1]."""
    data = as_plain(image)
    data = data if inplace else data.to(torch.float32, copy=True)
    for channel in data:
        lo, hi = percentiles(channel, (DEFAULT_LOW if low is None else low, DEFAULT_HIGH if high is None else high))
        channel.clamp_(lo, hi).sub_(lo).div_(max(hi - lo, 1e-8))
    return like(data, image)


class PercentileScaled(FunctionDict):
    """Dict transform around :func:`percentile_scale`."""

    function = staticmethod(percentile_scale)

    def __init__(self, keys: KeysCollection, low: float | None = None, high: float | None = None,
                 inplace: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys, low=low, high=high, inplace=inplace)
