"""describe(): the facts `medseg info` prints, and the label-map test."""
from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from medseg.io import write_image
from medseg.io.summary import describe, label_values
from tests.conftest import SAMPLE, SAMPLE_LABEL, random_oblique_affine


def test_describe_matches_nibabel_on_the_bundled_sample():
    for path in (SAMPLE, SAMPLE_LABEL):
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
        summary = describe(path)
        assert summary["shape"] == list(img.shape)
        np.testing.assert_allclose(summary["affine"], img.affine)
        np.testing.assert_allclose(summary["spacing"], img.header.get_zooms()[:3], atol=1e-6)
        assert summary["orientation"] == "".join(nib.aff2axcodes(img.affine))
        assert summary["dtype"] == str(img.get_data_dtype())
        assert (summary["min"], summary["max"]) == (data.min(), data.max())
    assert describe(SAMPLE_LABEL)["labels"] == [1, 2]
    assert "labels" not in describe(SAMPLE)


def test_labels_are_told_apart_from_intensity_images(rng):
    blobs = ndimage.gaussian_filter(rng.normal(size=(40, 40, 40)), 3)
    labels = np.digitize(blobs, [0.02, 0.04, 0.06]).astype(np.uint8)  # 4 smooth regions
    assert label_values(labels) == [1, 2, 3]
    assert label_values(labels.astype(np.float32)) == [1, 2, 3]
    probability = np.clip(blobs / blobs.max() * 255, 0, 255).astype(np.uint8)  # like MNI's GM map
    assert label_values(probability) is None
    assert label_values(rng.integers(0, 3, size=(20, 20, 20))) is None  # noise is not a segmentation
    assert label_values(labels.astype(np.int16) - 1) is None  # negative values
    assert label_values(labels.astype(np.float32) + 0.5) is None


def test_describe_dicom_series_and_float_with_non_finite_voxels(tmp_path, rng):
    data = rng.normal(size=(1, 6, 5, 4)).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    affine = random_oblique_affine(rng)
    write_image(data, tmp_path / "scan.nii.gz", affine=affine)
    summary = describe(tmp_path / "scan.nii.gz")
    assert summary["non_finite"] == 1
    assert summary["min"] == float(np.nanmin(data)) and summary["max"] == float(np.nanmax(data))
    write_image(np.nan_to_num(data).round().astype(np.int16), tmp_path / "series", affine=affine)
    series = describe(tmp_path / "series")
    assert series["shape"] == [6, 5, 4] and series["dtype"] == "int16"
    np.testing.assert_allclose(series["affine"], affine, atol=1e-5)
