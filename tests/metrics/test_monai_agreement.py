"""The default convention reproduces MONAI 1.6.1 on random shapes, to 1e-6 mm."""
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from medseg.metrics import compute_metrics

monai_metrics = pytest.importorskip("monai.metrics")


def random_labels(rng, shape, n_labels, smooth=2.0):
    """Blobby multi-label maps: thresholded smoothed noise, one field per label."""
    out = np.zeros(shape, np.uint8)
    for label in range(1, n_labels + 1):
        field = ndimage.gaussian_filter(rng.normal(size=shape), smooth)
        out[field > np.quantile(field, 0.85)] = label
    return out


def monai_reference(pred, ref, spacing, labels, tolerance):
    def one_hot(a):
        return torch.from_numpy(np.stack([a == v for v in labels])[None]).float()

    p, r = one_hot(pred), one_hot(ref)
    kw = {"include_background": True, "spacing": list(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "dice": monai_metrics.compute_dice(p, r, include_background=True)[0],
            "hd": monai_metrics.compute_hausdorff_distance(p, r, **kw)[0],
            "hd95": monai_metrics.compute_hausdorff_distance(p, r, percentile=95, **kw)[0],
            "assd": monai_metrics.compute_average_surface_distance(p, r, symmetric=True, **kw)[0],
            "msd_pred_to_ref": monai_metrics.compute_average_surface_distance(p, r, **kw)[0],
            "msd_ref_to_pred": monai_metrics.compute_average_surface_distance(r, p, **kw)[0],
            "nsd": monai_metrics.compute_surface_dice(p, r, [tolerance] * len(labels), **kw)[0],
        }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_monai_3d(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(24, 40, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.4, 3.0, 3))
    ref = random_labels(rng, shape, 3)
    pred = random_labels(rng, shape, 3) if seed == 2 else ndimage.binary_dilation(ref == 1) * 1 + (ref == 2) * 2
    pred = pred.astype(np.uint8)
    pred[ref == 3] = 3
    pred[tuple(rng.integers(0, n, 40) for n in shape)] = 3  # speckle: far outliers
    labels = [1, 2, 3]
    tolerance = float(rng.uniform(0.5, 3.0))
    ours = compute_metrics(pred, ref, spacing, labels, tolerance=tolerance)
    expected = monai_reference(pred, ref, spacing, labels, tolerance)
    for i, m in enumerate(ours):
        for key, values in expected.items():
            assert getattr(m, key) == pytest.approx(float(values[i]), abs=1e-6), (m.label, key)


def test_matches_monai_2d_and_at_the_image_border():
    rng = np.random.default_rng(5)
    ref = random_labels(rng, (64, 48), 2, smooth=3.0)
    pred = random_labels(rng, (64, 48), 2, smooth=3.0)
    ref[0, :10] = 1  # touches the border: border voxels are edges
    pred[:, -1] = 2
    spacing = (0.7, 1.9)
    ours = compute_metrics(pred, ref, spacing, [1, 2], tolerance=1.5)
    expected = monai_reference(pred, ref, spacing, [1, 2], 1.5)
    for i, m in enumerate(ours):
        for key, values in expected.items():
            assert getattr(m, key) == pytest.approx(float(values[i]), abs=1e-6), (m.label, key)


def test_dense_and_sparse_distance_paths_agree(monkeypatch):
    """The KD-tree and distance-transform paths give the same distances (speckle makes surfaces dense)."""
    from medseg.metrics import surface

    rng = np.random.default_rng(3)
    pred = (rng.random((30, 30, 20)) < 0.3).astype(np.uint8)
    ref = (rng.random((30, 30, 20)) < 0.3).astype(np.uint8)
    results = []
    for fraction in (0.0, np.inf):
        monkeypatch.setattr(surface, "_DENSE_FRACTION", fraction)
        results.append(compute_metrics(pred, ref, (0.9, 1.3, 2.1), tolerance=1.0)[0])
    assert results[0] == results[1]


def test_matches_monai_on_real_hippocampus_labels(shared_data):
    """A real MSD hippocampus label map against a prediction one voxel off and partly eroded."""
    import nibabel as nib

    path = shared_data / "msd_hippocampus" / "labelsTr" / "hippocampus_003.nii.gz"  # stored as float32
    ref = np.asarray(nib.load(str(path)).dataobj).astype(np.uint8)
    pred = np.roll(ref, 1, axis=1)
    pred[ndimage.binary_erosion(ref == 2, iterations=2)] = 0  # a hole in the posterior part
    spacing = (1.0, 1.0, 1.0)
    ours = compute_metrics(pred, ref, spacing, [1, 2], tolerance=1.0)
    expected = monai_reference(pred, ref, spacing, [1, 2], 1.0)
    for i, m in enumerate(ours):
        for key, values in expected.items():
            assert getattr(m, key) == pytest.approx(float(values[i]), abs=1e-6), (m.label, key)
