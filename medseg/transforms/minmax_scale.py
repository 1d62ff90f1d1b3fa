"""MinMaxScaled: rescale each channel's own min..max to [0, 1] (constant channels become 0)."""
from __future__ import annotations

import torch
from monai.config import KeysCollection

from medseg.transforms._util import FunctionDict, as_plain, like


def minmax_scale(image: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """Per channel: (x - min) / (max - min)."""
    data = as_plain(image)
    data = data if inplace else data.to(torch.float32, copy=True)
    for channel in data:
        lo, hi = float(channel.min()), float(channel.max())
        channel.sub_(lo).div_(max(hi - lo, 1e-8))
    return like(data, image)


class MinMaxScaled(FunctionDict):
    """Dict transform around :func:`minmax_scale`."""

    function = staticmethod(minmax_scale)

    def __init__(self, keys: KeysCollection, inplace: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys, inplace=inplace)
