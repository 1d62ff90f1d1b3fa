"""A scan in memory without MONAI: channel-first voxels, the 4x4 RAS affine and the reader's meta, i.e. what
:func:`medseg.io.read_image` puts in a :class:`monai.data.MetaTensor`, as plain numpy.

Predictors that read their case files themselves and need only the scan's grid from the batch path (nnU-Net
folders, TotalSegmentator) say so with ``plain_images = True``: :func:`medseg.inference.batch.run_batch` then
hands them a :class:`Volume`, and they return their labels as one (:func:`labels_like`), so those runs never
import MONAI (about 2.5 CPU-s of start-up on this machine). Callers that pass a MetaTensor get a MetaTensor.
"""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from monai.data import MetaTensor


@dataclass
class Volume:
    """``array`` ``(C, *spatial)``, ``affine`` 4x4 float64 RAS, ``meta`` as :func:`medseg.io.read_array` gives it;
    indexing, ``shape`` and ``np.asarray`` behave as on the MetaTensor :func:`medseg.io.read_image` returns."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.array[index]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.array if dtype is None else self.array.astype(dtype, copy=False)


def read_volume(path: str | PathLike, *, frame: int | None = None, series: str | None = None,
                allow_multichannel: bool = False) -> Volume:
    """:func:`medseg.io.read_image` as a :class:`Volume` (the same voxels, affine and meta; no torch, no MONAI)."""
    from medseg.io.readers import read_array

    array, affine, meta = read_array(path, frame=frame, series=series, allow_multichannel=allow_multichannel)
    affine = np.asarray(affine, dtype=np.float64)
    meta["original_affine"] = affine.copy()
    return Volume(array, affine, meta)


def labels_like(image: Any, labels: np.ndarray, meta: dict[str, Any]) -> MetaTensor | Volume:
    """``labels`` (spatial, integer) as a ``(1, *spatial)`` label map on ``image``'s grid, of ``image``'s kind:
    a :class:`Volume` for a Volume, else a MetaTensor with ``image.affine`` (what the predictors returned before)."""
    if isinstance(image, Volume):
        return Volume(labels[None], np.asarray(image.affine, dtype=np.float64), meta)
    import torch
    from monai.data import MetaTensor

    return MetaTensor(torch.from_numpy(labels)[None], affine=image.affine, meta=meta)
