"""Where the sliding windows go, how they are weighted, and the cells the stitcher accumulates into.

Windows follow nnU-Net's placement: along each axis ``ceil((size - roi) / step) + 1`` windows evenly spread
so the first starts at 0 and the last ends at ``size`` (step = roi * (1 - overlap)). The volume is cut
into *cells* at every window boundary; a cell receives contributions from a fixed set of windows and is
final (can be turned into labels and freed) as soon as the last of them has run. Windows are weighted
with nnU-Net's own Gaussian map (see :func:`gaussian_weights`).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

GAUSSIAN_SIGMA = 0.125    # sigma = roi / 8 (nnU-Net)
GAUSSIAN_FLOOR = 1e-3     # floor of the weights when cells accumulate in float16


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
def _gaussian_cpu(roi: tuple[int, ...], floor: float) -> torch.Tensor:
    # nnU-Net v2's compute_gaussian: a unit impulse at roi // 2 filtered with sigma roi / 8 (scipy truncates
    # at 4 sigma), scaled to a maximum of 10 and rounded to float16, zeros replaced by the smallest non-zero
    # value. Using the same map (not a centred analytic Gaussian) is what makes the engine's labels agree
    # with nnU-Net's: the analytic one shifts the peak by half a voxel on even sizes and never truncates.
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros(roi)
    impulse[tuple(n // 2 for n in roi)] = 1.0
    g = gaussian_filter(impulse, [n * GAUSSIAN_SIGMA for n in roi], 0, mode="constant", cval=0)
    g16 = torch.from_numpy(g / (g.max() / 10.0)).to(torch.float16)
    zero = g16 == 0
    if zero.any():
        g16[zero] = g16[~zero].min()
    weights = g16.float() / 10.0
    return weights.clamp_min_(floor) if floor > 0 else weights


def gaussian_weights(roi: Sequence[int], device: torch.device | str = "cpu", floor: float = 0.0) -> torch.Tensor:
    """nnU-Net's Gaussian importance map of shape ``roi`` divided by its maximum (so max 1), float32.

    ``floor`` (e.g. ``GAUSSIAN_FLOOR`` for float16 accumulation) raises the smallest weights so window
    corners still carry a representable vote.
    """
    return _gaussian_cpu(tuple(int(r) for r in roi), float(floor)).to(device)


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
