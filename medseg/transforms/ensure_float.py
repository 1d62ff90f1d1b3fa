"""EnsureFloatd: a float32 copy of the image with NaN/inf replaced, so later steps may work in place."""
from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from medseg.core.log import get_logger
from medseg.transforms._util import as_plain, like

logger = get_logger(__name__)


def ensure_float(image: torch.Tensor) -> torch.Tensor:
    """Return a new float32 tensor (never a view of ``image``); NaN -> 0, +-inf -> the finite max/min."""
    data = as_plain(image).to(torch.float32, copy=True)
    if not torch.isfinite(data).all():
        finite = data[torch.isfinite(data)]
        low, high = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
        torch.nan_to_num_(data, nan=0.0, posinf=high, neginf=low)
        logger.debug("replaced non-finite voxels (NaN -> 0, inf -> [%g, %g])", low, high)
    return like(data, image)


class EnsureFloatd(MapTransform):
    """Dict transform: ``d[key]`` becomes an owned float32 (Meta)Tensor with finite values."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = ensure_float(d[key])
        return d
