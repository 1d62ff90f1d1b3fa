"""ZScoreNormalized: per-image, per-channel (x - mean) / std, optionally after a percentile clip (MR)."""
from __future__ import annotations

import torch
from monai.config import KeysCollection

from medseg.transforms._util import FunctionDict, as_plain, like, percentiles


def zscore(image: torch.Tensor, low: float | None = None, high: float | None = None, *,
           inplace: bool = False, nonzero: bool = False) -> torch.Tensor:
    """Clip each channel to its [low, high] percentiles (when given), then subtract mean, divide by std.

    ``nonzero``: statistics, clipping and normalisation inside each channel's non-zero voxels only, zeros
    kept (skull-stripped BraTS MR, where the zero background would otherwise dominate the statistics)."""
    data = as_plain(image)
    data = data if inplace else data.to(torch.float32, copy=True)
    for channel in data:
        if nonzero:
            _zscore_inside(channel, channel != 0, low, high)
            continue
        if low is not None or high is not None:
            lo, hi = percentiles(channel, (0.0 if low is None else low, 100.0 if high is None else high))
            channel.clamp_(lo, hi)
        std, mean = torch.std_mean(channel.double() if channel.numel() < (1 << 24) else channel)
        channel.sub_(float(mean)).div_(max(float(std), 1e-8))
    return like(data, image)


def _zscore_inside(channel: torch.Tensor, mask: torch.Tensor, low: float | None, high: float | None) -> None:
    if not bool(mask.any()):
        return
    values = channel[mask]
    if low is not None or high is not None:
        lo, hi = percentiles(values, (0.0 if low is None else low, 100.0 if high is None else high))
        values = values.clamp(lo, hi)
    std, mean = torch.std_mean(values.double()) if values.numel() > 1 else (torch.ones(()), values.mean())
    channel[mask] = ((values - float(mean)) / max(float(std), 1e-8)).to(channel.dtype)


class ZScoreNormalized(FunctionDict):
    """Dict transform around :func:`zscore`; ``low``/``high`` are percentiles (0..100) or None."""

    function = staticmethod(zscore)

    def __init__(self, keys: KeysCollection, low: float | None = None, high: float | None = None,
                 inplace: bool = False, allow_missing_keys: bool = False, nonzero: bool = False) -> None:
        super().__init__(keys, allow_missing_keys, low=low, high=high, inplace=inplace, nonzero=nonzero)
