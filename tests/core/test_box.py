"""The box around a mask: what cropping to the body and the cascade's organ crop both cut out."""
from __future__ import annotations

import numpy as np

from medseg.core.box import mask_extent


def test_mask_extent_is_the_tightest_box_holding_every_voxel():
    mask = np.zeros((9, 7, 5), dtype=bool)
    mask[2, 3, 1] = mask[6, 1, 4] = True
    box = mask_extent(mask)
    assert box is not None and box.start == (2, 1, 1) and box.stop == (7, 4, 5)
    assert box.size == (5, 3, 4) and box.voxels == 60
    assert mask[box.slices].sum() == mask.sum()


def test_empty_mask_has_no_box():
    assert mask_extent(np.zeros((4, 4, 4))) is None
