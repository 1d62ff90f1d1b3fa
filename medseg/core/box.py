"""Boxes of voxels, ``[start, stop)`` per axis, and the box around a mask's non-zero voxels.

Cropping to the body before the sliding window (:mod:`medseg.inference.crop`) and cropping to a stage-1
organ in the cascade (:mod:`medseg.cascade.roi`) both cut a box out of a grid and paste the result back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    """A box ``[start, stop)`` per spatial axis, in voxels of the grid it was cut from."""

    start: tuple[int, ...]
    stop: tuple[int, ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def voxels(self) -> int:
        return math.prod(self.size)


def mask_extent(mask: np.ndarray) -> Box | None:
    """The tightest box holding every non-zero voxel of ``mask``; None when the mask is empty."""
    data = np.asarray(mask) != 0
    start, stop = [], []
    for axis in range(data.ndim):
        hit = np.flatnonzero(data.any(axis=tuple(a for a in range(data.ndim) if a != axis)))
        if hit.size == 0:
            return None
        start.append(int(hit[0]))
        stop.append(int(hit[-1]) + 1)
    return Box(tuple(start), tuple(stop))
