"""Where the sliding windows go, how they are weighted, and the cells the stitcher accumulates into.

Windows follow nnU-Net's placement: along each axis ``ceil((size - roi) / step) + 1`` windows evenly spread
so the first starts at 0 and the last ends at ``size`` (step = roi * (1 - overlap)). The volume is cut
into *cells* at every window boundary; a cell receives contributions from a fixed set of windows and is
final (can be turned into labels and freed) as soon as the last of them has run.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

GAUSSIAN_SIGMA = 0.125    # sigma = roi / 8 (nnU-Net, MONAI sigma_scale)
GAUSSIAN_FLOOR = 1e-3     # keeps border weights representable in float16 accumulation


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start offsets of windows of length ``roi`` covering ``[0, size)`` (``size >= roi``)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= roi:
        return [0]
    step = roi * (1.0 - overlap)
    count = math.ceil((size - roi) / step) + 1
    actual = (size - roi) / (count - 1)
    return sorted({int(round(actual * i)) for i in range(count)})


@lru_cache(maxsize=8)
def _gaussian_cpu(roi: tuple[int, ...]) -> torch.Tensor:
    weights = None
    for n in roi:
        if n == 1:
            axis = np.ones(1)
        else:
            centre, sigma = (n - 1) / 2.0, max(n * GAUSSIAN_SIGMA, 1e-6)
            axis = np.exp(-0.5 * ((np.arange(n) - centre) / sigma) ** 2)
        weights = axis if weights is None else np.multiply.outer(weights, axis)
    assert weights is not None  # roi has at least one axis
    weights = weights / weights.max()
    return torch.from_numpy(np.maximum(weights, GAUSSIAN_FLOOR).astype(np.float32))


def gaussian_weights(roi: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """Separable Gaussian importance map of shape ``roi`` (max 1, floor ``GAUSSIAN_FLOOR``)."""
    return _gaussian_cpu(tuple(int(r) for r in roi)).to(device)


@dataclass
class WindowGrid:
    """Windows over a (padded) volume, in processing order, and the cells they write into.

    Args:
        size: spatial size of the volume (every axis >= roi).
        roi: window size per axis.
        starts: window start offsets per axis.
        order: axes from slowest to fastest; the slowest axis should be the longest one so the set of
            live (unfinished) cells is a thin slab across the two smaller axes.
    """

    size: tuple[int, ...]
    roi: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]
    order: tuple[int, ...]
    bounds: tuple[tuple[int, ...], ...] = field(init=False)
    windows: list[tuple[int, ...]] = field(init=False)
    cell_ranges: list[tuple[tuple[int, int], ...]] = field(init=False)
    final_after: dict[int, list[tuple[int, ...]]] = field(init=False)

    def __post_init__(self) -> None:
        self.bounds = tuple(
            tuple(sorted({*s, *(v + r for v in s)})) for s, r in zip(self.starts, self.roi)
        )
        index = [{b: i for i, b in enumerate(bounds)} for bounds in self.bounds]
        positions = [range(len(s)) for s in self.starts]
        self.windows, self.cell_ranges = [], []
        for combo in itertools.product(*(positions[a] for a in self.order)):
            pos = [0] * len(self.size)
            for a, p in zip(self.order, combo):
                pos[a] = p
            start = tuple(self.starts[a][pos[a]] for a in range(len(self.size)))
            self.windows.append(start)
            self.cell_ranges.append(tuple(
                (index[a][start[a]], index[a][start[a] + self.roi[a]]) for a in range(len(self.size))
            ))
        # last window position along each axis covering each cell
        last = []
        for a, starts in enumerate(self.starts):
            ends = [0] * (len(self.bounds[a]) - 1)
            for p, s in enumerate(starts):
                for c in range(index[a][s], index[a][s + self.roi[a]]):
                    ends[c] = p
            last.append(ends)
        counts = [len(s) for s in self.starts]
        self.final_after = {}
        for cell in itertools.product(*(range(len(b) - 1) for b in self.bounds)):
            linear = 0
            for a in self.order:
                linear = linear * counts[a] + last[a][cell[a]]
            self.final_after.setdefault(linear, []).append(cell)

    @classmethod
    def plan(cls, size: Sequence[int], roi: Sequence[int], overlap: float,
             order: Sequence[int] | None = None) -> WindowGrid:
        """Windows for ``size`` (each axis >= roi); ``order`` defaults to longest axis first."""
        size, roi = tuple(int(s) for s in size), tuple(int(r) for r in roi)
        starts = tuple(tuple(window_starts(n, r, overlap if r > 1 else 0.0)) for n, r in zip(size, roi))
        if order is None:
            order = tuple(sorted(range(len(size)), key=lambda a: (-size[a], a)))
        return cls(size, roi, starts, tuple(order))

    def cell_slices(self, cell: tuple[int, ...]) -> tuple[slice, ...]:
        """The volume region of a cell."""
        return tuple(slice(b[c], b[c + 1]) for b, c in zip(self.bounds, cell))

    def live_voxels_bound(self) -> int:
        """An upper bound on voxels held by live cells at once (slab of one window depth across the
        two fastest axes, plus one window row): used to pick the accumulation dtype."""
        slow = self.order[0]
        plane = math.prod(self.size[a] for a in self.order[1:])
        return self.roi[slow] * plane + math.prod(self.roi)
