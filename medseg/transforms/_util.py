"""Helpers shared by the custom transforms: wrap results back into MetaTensors, robust percentiles."""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

# Above this many voxels, percentiles are taken on a deterministic strided sample (error << 0.1 %).
PERCENTILE_SAMPLE = 1 << 22


def as_plain(image: torch.Tensor) -> torch.Tensor:
    """The data of a (Meta)Tensor as a plain tensor sharing its storage."""
    return image.as_tensor() if isinstance(image, MetaTensor) else image


def like(data: torch.Tensor, template: torch.Tensor, **meta_updates) -> torch.Tensor:
    """``data`` wrapped as a MetaTensor with ``template``'s affine and meta (``meta_updates`` applied)."""
    if not isinstance(template, MetaTensor):
        return data
    meta = dict(template.meta)
    meta.update(meta_updates)
    affine = meta_updates.get("affine", template.affine)
    meta.pop("affine", None)
    return MetaTensor(data, affine=affine, meta=meta)


class FunctionDict(MapTransform):
    """Dict transform applying a subclass's array ``function`` with fixed keyword arguments to every key."""

    function: ClassVar[Callable[..., torch.Tensor]]

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.kwargs = kwargs

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = type(self).function(d[key], **self.kwargs)
        return d


def _coprime_stride(n: int, shape: tuple[int, ...]) -> int:
    """A stride near ``n / PERCENTILE_SAMPLE`` sharing no factor with any axis length (avoids aliasing)."""
    stride = max(1, n // PERCENTILE_SAMPLE) | 1
    while any(math.gcd(stride, int(s)) != 1 for s in shape if s > 1):
        stride += 2
    return stride


def percentiles(channel: torch.Tensor, qs: tuple[float, ...]) -> list[float]:
    """Percentiles (0..100) of one channel; large images use a strided sample with no axis aliasing."""
    flat = channel.reshape(-1)
    if flat.numel() > PERCENTILE_SAMPLE:
        flat = flat[:: _coprime_stride(flat.numel(), tuple(channel.shape))]
    values = np.percentile(flat.numpy(), qs)
    return [float(v) for v in np.atleast_1d(values)]
