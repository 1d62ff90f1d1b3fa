"""Readers: geometry agrees with nibabel and SimpleITK's own files, 4D frames, NaN warnings, bad input."""
from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medseg.core.errors import MedsegError
from medseg.io import read_image
from tests.conftest import random_oblique_affine
from tests.io.helpers import make_bad_inputs, nan_volume


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_nifti_written_by_nibabel_reads_with_nibabels_affine(tmp_path, rng):
    affine = random_oblique_affine(rng)
    data = rng.normal(size=(5, 6, 7)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "a.nii.gz")
    image = read_image(tmp_path / "a.nii.gz")
    np.testing.assert_allclose(image.affine.numpy(), nib.load(tmp_path / "a.nii.gz").affine)
    np.testing.assert_array_equal(image[0].numpy(), data)
    assert image.meta["spacing"] == pytest.approx((0.7, 1.3, 2.5), abs=1e-6)
    assert image.meta["space"] == "RAS" and image.meta["spatial_shape"] == (5, 6, 7)


@pytest.mark.parametrize("ext", ["nrrd", "mha", "nhdr"])
def test_itk_file_written_by_simpleitk_matches_itks_own_nifti_export(tmp_path, rng, ext):
    """ITK stores LPS; its NIfTI writer converts to RAS, which nibabel reads: the same affine must result."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q[:, 0] *= np.sign(np.linalg.det(q))
    data = rng.integers(0, 1000, size=(7, 6, 5)).astype(np.int16)  # (z, y, x) in SimpleITK's order
    image = sitk.GetImageFromArray(data)
    image.SetDirection(q.ravel())
    image.SetSpacing((0.8, 1.1, 3.0))
    image.SetOrigin((-20.0, 35.5, 60.25))
    sitk.WriteImage(image, str(tmp_path / f"a.{ext}"))
    sitk.WriteImage(image, str(tmp_path / "itk.nii.gz"))
    ours = read_image(tmp_path / f"a.{ext}")
    np.testing.assert_allclose(ours.affine.numpy(), nib.load(tmp_path / "itk.nii.gz").affine, atol=1e-5)
    np.testing.assert_array_equal(ours[0].numpy(), data.transpose(2, 1, 0))
    assert ours.meta["original_dtype"] == "int16"


def test_4d_needs_a_frame_unless_multichannel_is_allowed(tmp_path, rng):
    data = rng.integers(0, 100, size=(4, 5, 6, 3)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "four.nii.gz")
    with pytest.raises(MedsegError, match="--frame") as info:
        read_image(tmp_path / "four.nii.gz")
    assert "four.nii.gz" in str(info.value) and "(4, 5, 6, 3)" in str(info.value)
    np.testing.assert_array_equal(read_image(tmp_path / "four.nii.gz", frame=2)[0].numpy(), data[..., 2])
    assert read_image(tmp_path / "four.nii.gz", allow_multichannel=True).shape == (3, 4, 5, 6)
    with pytest.raises(MedsegError, match="frame 3 is out of range"):
        read_image(tmp_path / "four.nii.gz", frame=3)


def test_singleton_fourth_axis_and_nifti_vector_layout_are_understood(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.uint8), np.eye(4)), tmp_path / "t1.nii.gz")
    assert read_image(tmp_path / "t1.nii.gz").shape == (1, 4, 5, 6)
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1, 2), np.uint8), np.eye(4)), tmp_path / "vec.nii.gz")
    assert read_image(tmp_path / "vec.nii.gz", allow_multichannel=True).shape == (2, 4, 5, 6)
    with pytest.raises(MedsegError, match="drop --frame"):
        read_image(tmp_path / "t1.nii.gz", frame=1)


def test_nan_and_inf_voxels_give_a_warning_with_their_count_not_an_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)
    path = nan_volume(tmp_path, count=5)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        image = read_image(path)
    assert int(torch.isnan(image).sum() + torch.isinf(image).sum()) == 5
    assert "5 NaN/inf voxels" in caplog.text and "with_nan.nii.gz" in caplog.text


def test_scaled_nifti_reads_as_float_and_remembers_its_stored_integer_type(tmp_path):
    raw = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, tmp_path / "ct.nii.gz")
    image = read_image(tmp_path / "ct.nii.gz")
    assert image.dtype.is_floating_point and image.meta["original_dtype"] == "int16"
    assert float(image.min()) == -1024.0


def test_uint16_is_held_as_int32_in_torch_and_remembered(tmp_path):
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), 65535, np.uint16), np.eye(4)), tmp_path / "u16.nii.gz")
    image = read_image(tmp_path / "u16.nii.gz")
    assert image.dtype == torch.int32 and int(image.max()) == 65535
    assert image.meta["original_dtype"] == "uint16"


BAD = ["missing", "unknown extension", "truncated nii.gz", "truncated nii", "text renamed nii",
       "text renamed nii.gz", "png renamed nii", "text renamed nrrd", "4D volume", "singular affine",
       "empty folder", "folder without DICOM", "several series"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_one_line_medseg_error_naming_the_file(bad_inputs, case):
    path, words = bad_inputs[case]
    with pytest.raises(MedsegError) as info:
        read_image(path)
    message = str(info.value)
    assert words in message
    assert str(path) in message and info.value.hint  # names the file and what to do
    assert "\n" not in message
