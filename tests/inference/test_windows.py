import itertools

import pytest
import torch

from medseg.inference.windows import (
    GAUSSIAN_FLOOR,
    WindowGrid,
    gaussian_weights,
    window_starts,
)


@pytest.mark.parametrize("size,roi,overlap", [(128, 40, 0.5), (100, 32, 0.25), (33, 32, 0.5), (32, 32, 0.5),
                                              (300, 128, 0.0), (7, 1, 0.5)])
def test_windows_cover_the_axis_evenly(size, roi, overlap):
    starts = window_starts(size, roi, overlap)
    assert starts[0] == 0 and starts[-1] + roi == size
    covered = torch.zeros(size, dtype=torch.bool)
    for s in starts:
        covered[s:s + roi] = True
    assert covered.all()
    steps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0 < st <= max(1, roi * (1 - overlap)) + 1 for st in steps)


def test_every_cell_is_finalised_once_after_its_last_window():
    grid = WindowGrid.plan((50, 37, 70), (16, 16, 32), 0.5)
    assert grid.order[0] == 2  # longest axis is the slowest
    cells = [c for group in grid.final_after.values() for c in group]
    all_cells = list(itertools.product(*(range(len(b) - 1) for b in grid.bounds)))
    assert sorted(cells) == sorted(all_cells)
    for index, group in grid.final_after.items():
        for cell in group:
            covering = [w for w, ranges in enumerate(grid.cell_ranges)
                        if all(lo <= c < hi for c, (lo, hi) in zip(cell, ranges))]
            assert max(covering) == index


def test_gaussian_is_peaked_and_floored():
    g = gaussian_weights((9, 16, 1), floor=GAUSSIAN_FLOOR)
    assert g.shape == (9, 16, 1)
    assert float(g.max()) == 1.0 and float(g.min()) >= GAUSSIAN_FLOOR
    assert float(g[4, 7, 0]) > float(g[0, 0, 0])


def test_gaussian_peaks_where_nnunet_puts_it():
    # nnU-Net filters an impulse at roi // 2: on an even size the peak is at n // 2, not between two voxels,
    # and weights beyond 4 sigma take the smallest non-zero value instead of the analytic tail
    g = gaussian_weights((16, 9, 12))
    assert tuple(int(i) for i in torch.nonzero(g == g.max())[0]) == (8, 4, 6)
    assert float(g[8, 4, 6]) == 1.0 and float(g[7, 4, 6]) == float(g[9, 4, 6]) < 1.0
    assert float(g[0, 4, 6]) < float(g[15, 4, 6])  # 8 voxels from the peak vs 7
    assert float(g.min()) > 0
