"""nnU-Net's sliding-window pieces that medseg computes its own way must give nnU-Net's numbers exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medseg.nnunet.sliding import VALUE_SCALING, gaussian_map


@pytest.mark.parametrize("patch", [(128, 128, 128), (112, 112, 128), (40, 56, 40), (1, 256, 224), (20, 192, 160)])
def test_gaussian_map_is_nnunets_compute_gaussian_bit_for_bit(patch):
    tmp = np.zeros(patch)                                      # nnU-Net's compute_gaussian, as it writes it
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode="constant", cval=0)
    g /= np.max(g) / VALUE_SCALING
    expected = torch.from_numpy(g).to(torch.float16)
    expected[expected == 0] = torch.min(expected[expected != 0])
    gaussian_map.cache_clear()
    assert torch.equal(gaussian_map(tuple(patch)), expected)
