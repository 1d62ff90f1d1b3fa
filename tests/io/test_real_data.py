"""Real scans from ../shared/data (skipped when absent): geometry as nibabel reports it, lossless conversion."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.io import read_image, write_image
from medseg.io.summary import describe

pytestmark = pytest.mark.shared

TOTALSEG = "totalsegmentator_example"
SCANS = {  # relative path -> (shape, spacing, orientation, dtype)
    f"{TOTALSEG}/example_ct_sm.nii.gz": ((122, 101, 30), (3.0, 3.0, 3.0), "RAS", "int16"),
    f"{TOTALSEG}/example_mr_sm.nii.gz": ((117, 91, 20), (3.0, 3.0, 3.0), "LPS", "int16"),
    f"{TOTALSEG}/example_seg_mr.nii.gz": ((117, 91, 20), (3.0, 3.0, 3.0), "LPS", "uint8"),
    "msd_hippocampus/imagesTr/hippocampus_001.nii.gz": ((35, 51, 35), (1.0, 1.0, 1.0), "RAS", "uint8"),
    "msd_hippocampus/labelsTr/hippocampus_003.nii.gz": ((34, 52, 35), (1.0, 1.0, 1.0), "RAS", "float32"),
    "mni152_nilearn/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz":
        ((197, 233, 189), (1.0, 1.0, 1.0), "RAS", "uint8"),
}


@pytest.mark.parametrize("relative", list(SCANS))
def test_real_scan_reads_as_nibabel_reports_it(shared_data, relative):
    path = shared_data / relative
    shape, spacing, orientation, dtype = SCANS[relative]
    img = nib.load(path)
    if img.shape != shape:  # the table is documentation; nibabel is the reference
        pytest.fail(f"{relative}: nibabel says {img.shape}, the table {shape}")
    image = read_image(path)
    assert image.shape == (1, *shape)
    np.testing.assert_allclose(image.affine.numpy(), img.affine)
    np.testing.assert_array_equal(image[0].numpy(), np.asanyarray(img.dataobj))
    summary = describe(path)
    assert summary["orientation"] == orientation == "".join(nib.aff2axcodes(img.affine))
    np.testing.assert_allclose(summary["spacing"], spacing, atol=1e-6)
    np.testing.assert_allclose(summary["affine"], img.affine)
    assert summary["dtype"] == dtype == str(img.get_data_dtype())


def test_totalsegmentator_ct_and_mr_have_opposite_in_plane_directions(shared_data):
    ct = read_image(shared_data / TOTALSEG / "example_ct_sm.nii.gz").affine.numpy()
    mr = read_image(shared_data / TOTALSEG / "example_mr_sm.nii.gz").affine.numpy()
    assert np.all(np.sign(np.diag(ct)[:2]) == -np.sign(np.diag(mr)[:2]))


def test_label_counts_match_the_reference_segmentations(shared_data):
    seg = shared_data / TOTALSEG / "example_seg_mr.nii.gz"
    values = np.unique(np.asanyarray(nib.load(seg).dataobj))
    assert describe(seg)["labels"] == [int(v) for v in values if v]
    assert describe(shared_data / "msd_hippocampus/labelsTr/hippocampus_003.nii.gz")["labels"] == [1, 2]
    assert "labels" not in describe(shared_data / "mni152_nilearn/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")


@pytest.mark.parametrize("relative", list(SCANS))
@pytest.mark.parametrize("via", ["nrrd", "mha"])
def test_real_scan_survives_conversion_and_back(shared_data, tmp_path, relative, via):
    source = read_image(shared_data / relative)
    write_image(source, tmp_path / f"scan.{via}")
    middle = read_image(tmp_path / f"scan.{via}")
    write_image(middle, tmp_path / "back.nii.gz")
    for image in (middle, read_image(tmp_path / "back.nii.gz")):
        np.testing.assert_array_equal(image.numpy(), source.numpy())
        np.testing.assert_allclose(image.affine.numpy(), source.affine.numpy(), atol=1e-5)
        assert image.meta["original_dtype"] == source.meta["original_dtype"]


def test_real_mr_survives_a_dicom_series(shared_data, tmp_path):
    source = read_image(shared_data / TOTALSEG / "example_mr_sm.nii.gz")
    write_image(source, tmp_path / "mr_dicom")
    assert len(list((tmp_path / "mr_dicom").iterdir())) == source.shape[-1]
    image = read_image(tmp_path / "mr_dicom")
    np.testing.assert_array_equal(image.numpy(), source.numpy())
    np.testing.assert_allclose(image.affine.numpy(), source.affine.numpy(), atol=1e-4)
    assert image.meta["original_dtype"] == "int16"


def test_real_2d_xray_and_mask(shared_data):
    images = sorted((shared_data / "cxr_lung_covid_v7" / "images").glob("*.jpg"))
    if not images:
        pytest.skip("no chest X-rays in ../shared/data")
    xray = read_image(images[0])
    mask = read_image(shared_data / "cxr_lung_covid_v7" / "masks" / f"{images[0].stem}.png")
    assert xray.shape == mask.shape == (1, 2000, 2000)
    assert xray.meta["original_dtype"] == mask.meta["original_dtype"] == "uint8"
    assert set(np.unique(mask.numpy())) <= {0, 127, 255}
