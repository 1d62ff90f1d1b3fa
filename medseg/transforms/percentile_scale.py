"""PercentileScaled: clip each channel to its [low, high] percentiles and rescale that range to [0, 1]."""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medseg.transforms._util import as_plain, like, percentiles

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


class PercentileScaled(MapTransform):
    """Dict transform around :func:`percentile_scale`."""

    def __init__(self, keys: KeysCollection, low: float | None = None, high: float | None = None,
                 inplace: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.low, self.high, self.inplace = low, high, inplace

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = percentile_scale(d[key], self.low, self.high, inplace=self.inplace)
        return d
