"""ROI extraction (margin in mm, border clipping) and exact crop / paste-back geometry."""
import numpy as np
import torch
from monai.data import MetaTensor

from medseg.cascade import Roi, crop_to_roi, paste_back, roi_from_mask
from medseg.cascade._resample import resize, upsample_box
from tests.conftest import random_oblique_affine


def test_margin_is_physical_and_clipped_at_border():
    mask = np.zeros((40, 40, 20), bool)
    mask[18:22, 18:22, 1:3] = True                      # touches near the lower z border
    roi = roi_from_mask(mask, spacing=(1.0, 2.0, 4.0), margin_mm=8.0)
    assert roi.start == (10, 14, 0) and roi.stop == (30, 26, 5)
    assert roi_from_mask(np.zeros((4, 4, 4)), (1, 1, 1)) is None


def test_crop_affine_and_round_trip_keep_geometry(rng):
    affine = random_oblique_affine(rng)
    data = torch.from_numpy(rng.normal(size=(2, 30, 25, 12)).astype(np.float32))
    image = MetaTensor(data, affine=torch.as_tensor(affine))
    roi = Roi((5, 0, 3), (17, 25, 12))
    crop = crop_to_roi(image, roi)
    assert tuple(crop.shape) == (2, 12, 25, 9)
    expected = affine.copy()
    expected[:3, 3] = affine[:3, :3] @ np.array([5, 0, 3]) + affine[:3, 3]
    np.testing.assert_allclose(np.asarray(crop.affine), expected, atol=1e-9)
    # same voxel -> same world point
    v = np.array([2, 7, 4, 1.0])
    np.testing.assert_allclose(np.asarray(crop.affine) @ v, affine @ (v + np.array([5, 0, 3, 0])), atol=1e-9)
    # paste a modified crop back: inside changed, outside bit-identical
    back = paste_back(crop.as_tensor() + 1, roi, data)
    inside = torch.zeros(data.shape[1:], dtype=torch.bool)
    inside[roi.slices] = True
    assert torch.equal(back[:, ~inside], data[:, ~inside])
    assert torch.equal(back[:, inside], (data + 1)[:, inside])
    assert torch.equal(paste_back(crop.as_tensor(), roi, data), data)


def test_upsample_box_equals_full_interpolation(rng):
    coarse = torch.from_numpy(rng.random((3, 7, 9, 5)).astype(np.float32))
    full = (20, 31, 14)
    ref = resize(coarse, full)
    box = upsample_box(coarse, full, (3, 0, 5), (15, 31, 14))
    torch.testing.assert_close(box, ref[:, 3:15, 0:31, 5:14], atol=1e-5, rtol=1e-5)
