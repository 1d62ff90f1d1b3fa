"""The surface-distance convention against DeepMind's definitions, written out plainly here.

The reference below follows DeepMind surface-distance's documented algorithm on the *whole* image (no
crop, no KD-tree): neighbourhood codes by correlation with the 2x2x2 kernel, surfel areas from the
marching-cubes normals table, distance maps by EDT, robust Hausdorff from sorted (distance, area) pairs.
"""
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.metrics import compute_metrics
from tests.metrics.test_monai_agreement import random_labels

KERNEL_3D = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
KERNEL_2D = np.array([[8, 4], [2, 1]])


def area_table(spacing):
    if len(spacing) == 2:
        diag = 0.5 * np.linalg.norm(spacing)
        lengths = {1: diag, 2: diag, 3: spacing[1], 4: diag, 5: spacing[0], 6: 2 * diag, 7: diag, 8: diag,
                   9: 2 * diag, 10: spacing[0], 11: diag, 12: spacing[1], 13: diag, 14: diag}
        return np.array([lengths.get(code, 0.0) for code in range(16)])
    from monai.metrics.utils import _get_neighbour_code_to_normals_table

    normals = np.asarray(_get_neighbour_code_to_normals_table(), dtype=np.float64)
    s = spacing
    table = np.zeros(256)
    for code in range(256):
        for normal in normals[code]:
            table[code] += np.linalg.norm(normal * [s[1] * s[2], s[0] * s[2], s[0] * s[1]])
    return table


def deepmind_surface_distances(gt, pred, spacing):
    kernel = KERNEL_3D if gt.ndim == 3 else KERNEL_2D
    full = kernel.sum()
    table = area_table(spacing)
    # one zero voxel on the high side; correlate's constant padding supplies the low side
    pad = [(0, 1)] * gt.ndim
    codes_gt = ndimage.correlate(np.pad(gt, pad).astype(np.uint8), kernel, mode="constant", cval=0)
    codes_pred = ndimage.correlate(np.pad(pred, pad).astype(np.uint8), kernel, mode="constant", cval=0)
    borders_gt = (codes_gt != 0) & (codes_gt != full)
    borders_pred = (codes_pred != 0) & (codes_pred != full)
    dist_gt = ndimage.distance_transform_edt(~borders_gt, sampling=spacing)
    dist_pred = ndimage.distance_transform_edt(~borders_pred, sampling=spacing)

    def sort(d, a):
        pairs = np.array(sorted(zip(d, a)))
        return pairs[:, 0], pairs[:, 1]

    d_gt, a_gt = sort(dist_pred[borders_gt], table[codes_gt[borders_gt]])
    d_pred, a_pred = sort(dist_gt[borders_pred], table[codes_pred[borders_pred]])
    return d_gt, a_gt, d_pred, a_pred


def robust_hausdorff(d_gt, a_gt, d_pred, a_pred, percent):
    def one(d, a):
        cum = np.cumsum(a) / np.sum(a)
        return d[min(np.searchsorted(cum, percent / 100.0), len(d) - 1)]

    return max(one(d_gt, a_gt), one(d_pred, a_pred))


def deepmind_metrics(gt, pred, spacing, tolerance):
    d_gt, a_gt, d_pred, a_pred = deepmind_surface_distances(gt, pred, spacing)
    overlap_gt = np.sum(a_gt[d_gt <= tolerance])
    overlap_pred = np.sum(a_pred[d_pred <= tolerance])
    return {
        "hd": robust_hausdorff(d_gt, a_gt, d_pred, a_pred, 100),
        "hd95": robust_hausdorff(d_gt, a_gt, d_pred, a_pred, 95),
        "msd_ref_to_pred": np.sum(d_gt * a_gt) / np.sum(a_gt),
        "msd_pred_to_ref": np.sum(d_pred * a_pred) / np.sum(a_pred),
        "assd": (np.sum(d_gt * a_gt) + np.sum(d_pred * a_pred)) / (np.sum(a_gt) + np.sum(a_pred)),
        "nsd": (overlap_gt + overlap_pred) / (np.sum(a_gt) + np.sum(a_pred)),
        "dice": 2 * np.sum(gt & pred) / (gt.sum() + pred.sum()),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_deepmind_definitions_3d(seed):
    rng = np.random.default_rng(10 + seed)
    shape = tuple(int(n) for n in rng.integers(20, 34, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.5, 2.5, 3))
    ref, pred = random_labels(rng, shape, 2), random_labels(rng, shape, 2)
    pred[0, 0, :5] = 1  # on the image border
    tolerance = 1.7
    ours = compute_metrics(pred, ref, spacing, [1, 2], tolerance=tolerance, convention="surface-distance")
    for m in ours:
        expected = deepmind_metrics(ref == m.label, pred == m.label, spacing, tolerance)
        for key, value in expected.items():
            assert getattr(m, key) == pytest.approx(value, rel=1e-9, abs=1e-9), (m.label, key)


def test_matches_deepmind_definitions_2d():
    rng = np.random.default_rng(7)
    ref, pred = random_labels(rng, (50, 40), 1, smooth=2.5), random_labels(rng, (50, 40), 1, smooth=2.5)
    spacing = (0.8, 1.6)
    [m] = compute_metrics(pred, ref, spacing, [1], tolerance=1.0, convention="surface-distance")
    expected = deepmind_metrics(ref == 1, pred == 1, spacing, 1.0)
    for key, value in expected.items():
        assert getattr(m, key) == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_nsd_agrees_with_monai_subvoxel_surface_dice():
    """MONAI's compute_surface_dice(use_subvoxels=True) uses the same surfels and areas (in float32)."""
    from monai.metrics import compute_surface_dice

    rng = np.random.default_rng(4)
    ref, pred = random_labels(rng, (30, 28, 26), 1), random_labels(rng, (30, 28, 26), 1)
    spacing = (0.9, 1.2, 2.0)
    [m] = compute_metrics(pred, ref, spacing, [1], tolerance=2.0, convention="surface-distance")
    p = torch.from_numpy(np.stack([pred == 0, pred == 1])[None]).float()
    r = torch.from_numpy(np.stack([ref == 0, ref == 1])[None]).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = compute_surface_dice(p, r, [2.0], spacing=list(spacing), use_subvoxels=True)[0, 0]
    assert m.nsd == pytest.approx(float(expected), abs=1e-5)


def test_shipped_normals_table_is_monais():
    # medseg ships the table (as int8, times 8) so the convention needs no MONAI; it must stay MONAI's
    from monai.metrics.utils import _get_neighbour_code_to_normals_table

    from medseg.metrics.surface import _normals_table

    np.testing.assert_array_equal(_normals_table(), np.asarray(_get_neighbour_code_to_normals_table(), np.float64))
