"""Writers: detached headers get final names, failed writes leave nothing, dtype and geometry rules."""
from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import medseg.io.dicom
import medseg.io.writers
from medseg.core.errors import MedsegError
from medseg.io import read_image, write_image
from tests.conftest import random_oblique_affine
from tests.io.helpers import volume


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(("name", "data_file", "reference"), [
    ("vol.mhd", "vol.zraw", "ElementDataFile = vol.zraw"),
    ("vol.nhdr", "vol.raw.gz", "data file: vol.raw.gz"),
])
def test_detached_header_and_data_file_get_final_names(tmp_path, rng, name, data_file, reference):
    data = volume(rng, "int16")
    for _ in range(2):  # writing over an existing pair leaves the same two files
        write_image(data, tmp_path / name, affine=random_oblique_affine(rng))
        assert _names(tmp_path) == sorted([name, data_file])
    assert reference in (tmp_path / name).read_text(errors="replace")
    np.testing.assert_array_equal(read_image(tmp_path / name).numpy(), data)


def _fail_after_partial_output(target: Path) -> None:
    target.write_bytes(b"partial")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii", "out.nrrd", "out.mha", "out.mhd", "out.nhdr",
                                  "out.png", "out.tif", "out_dicom"])
def test_a_failed_write_leaves_no_partial_output_and_keeps_the_old_file(tmp_path, rng, monkeypatch, name):
    data = volume(rng, "uint8", shape=(6, 5) if name.endswith((".png", ".tif")) else (6, 5, 4))
    folder = tmp_path / "outputs"
    folder.mkdir()
    old = folder / "out.nii.gz"
    if name != "out_dicom":
        old = folder / name
        write_image(data, old)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def broken_itk(image, target, *, compress):
        _fail_after_partial_output(Path(target))
        if str(target).endswith(".mhd"):
            Path(str(target)[:-4] + ".zraw").write_bytes(b"partial")

    def broken_dicom(array, affine, staged, **kwargs):
        (staged / "0001.dcm").write_bytes(b"partial")
        raise RuntimeError("GDCM could not write the file")

    monkeypatch.setattr(medseg.io.writers, "_execute_itk", broken_itk)
    monkeypatch.setattr(nib, "save", lambda img, target: _fail_after_partial_output(Path(target)))
    monkeypatch.setattr(medseg.io.dicom, "write_dicom_series", broken_dicom)
    with pytest.raises(MedsegError, match="could not be written") as info:
        write_image(data + 1, folder / name)
    assert name in str(info.value) and "\n" not in str(info.value)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == before  # no new file, no temp file, the old file untouched
    assert not any(p.is_dir() for p in folder.iterdir())


@pytest.mark.parametrize("name", ["sheared.nrrd", "sheared.mha", "sheared_dicom"])
def test_shear_is_refused_by_formats_that_cannot_store_it_and_kept_by_nifti(tmp_path, rng, name):
    affine = random_oblique_affine(rng)
    affine[:3, 1] += 0.3 * affine[:3, 0]
    data = volume(rng, "int16")
    with pytest.raises(MedsegError, match="shear"):
        write_image(data, tmp_path / name, affine=affine)
    assert _names(tmp_path) == []
    write_image(data, tmp_path / "sheared.nii.gz", affine=affine)
    np.testing.assert_allclose(read_image(tmp_path / "sheared.nii.gz").affine.numpy(), affine, atol=1e-5)


@pytest.mark.parametrize(("name", "match"), [
    ("out.jpg", "does not write .jpg"), ("out.bmp", "does not write .bmp"),
    ("out.dcm", "folder"), ("out.xyz", "unknown image extension"),
])
def test_unwritable_extensions_are_refused(tmp_path, name, match):
    with pytest.raises(MedsegError, match=match):
        write_image(np.zeros((1, 4, 4), np.uint8), tmp_path / name)
    assert _names(tmp_path) == []


def test_png_holds_only_8_and_16_bit_but_small_integer_labels_are_narrowed(tmp_path):
    with pytest.raises(MedsegError, match=r"\.png cannot hold float32.*\.tif"):
        write_image(np.zeros((1, 4, 4), np.float32), tmp_path / "a.png")
    with pytest.raises(MedsegError, match="cannot hold int32"):  # an explicit dtype is never changed
        write_image(np.zeros((1, 4, 4), np.int64), tmp_path / "b.png", dtype="int32")
    labels = torch.zeros(1, 4, 4, dtype=torch.int64)
    labels[0, 1, 1] = 2
    write_image(labels, tmp_path / "labels.png")
    image = read_image(tmp_path / "labels.png")
    assert image.meta["original_dtype"] == "uint8" and int(image.max()) == 2
    with pytest.raises(MedsegError, match="3D image"):
        write_image(np.zeros((1, 4, 4, 3), np.uint8), tmp_path / "c.png")


def test_png_warns_when_origin_or_direction_are_dropped(tmp_path, rng, monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)
    data = volume(rng, "uint8", shape=(5, 4))
    with caplog.at_level(logging.WARNING, logger="medseg"):
        write_image(data, tmp_path / "plain.png")  # identity: nothing lost
        write_image(data, tmp_path / "spacing.png", affine=np.diag([-0.5, -0.5, 1, 1]))
    assert caplog.text == ""
    shifted = np.diag([0.5, 0.5, 1.0, 1.0])
    shifted[:2, 3] = (10, 20)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        write_image(data, tmp_path / "shifted.png", affine=shifted)
    assert "origin and axis directions are dropped" in caplog.text
    assert read_image(tmp_path / "spacing.png").meta["spacing"] == pytest.approx((0.5, 0.5))


def test_tensor_inputs_are_written_in_a_dtype_the_format_holds(tmp_path):
    labels = torch.zeros(1, 6, 5, 4, dtype=torch.int64)
    labels[0, :2] = 3
    write_image(labels, tmp_path / "labels.nii.gz")  # nibabel refuses int64: narrowed losslessly
    assert nib.load(tmp_path / "labels.nii.gz").get_data_dtype() == np.uint8
    mask = torch.zeros(1, 6, 5, 4, dtype=torch.bool)
    write_image(mask, tmp_path / "mask.nrrd")
    assert read_image(tmp_path / "mask.nrrd").meta["original_dtype"] == "uint8"
    half = torch.ones(1, 6, 5, 4, dtype=torch.bfloat16, requires_grad=True) * 1.5
    write_image(half, tmp_path / "half.mha")
    image = read_image(tmp_path / "half.mha")
    assert image.meta["original_dtype"] == "float32" and float(image.max()) == 1.5


def test_original_dtype_is_restored_only_when_lossless(tmp_path, rng):
    source = volume(rng, "uint16", shape=(4, 4, 4))
    write_image(source, tmp_path / "a.nii.gz")
    image = read_image(tmp_path / "a.nii.gz")
    assert image.dtype == torch.int32  # torch has no uint16; the on-disk dtype is remembered
    write_image(image.float(), tmp_path / "b.nrrd")
    assert read_image(tmp_path / "b.nrrd").meta["original_dtype"] == "uint16"
    write_image(image.float() / 2 + 0.25, tmp_path / "c.nrrd")  # fractional now: stays float
    assert read_image(tmp_path / "c.nrrd").meta["original_dtype"] == "float32"
    write_image(image, tmp_path / "d.nrrd", dtype="float32")  # explicit dtype wins
    assert read_image(tmp_path / "d.nrrd").meta["original_dtype"] == "float32"


def test_nifti_keeps_sform_codes_a_json_extension_and_accepts_a_3x3_affine(tmp_path, rng):
    data = volume(rng, "int16")
    img = nib.Nifti1Image(data[0], np.diag([2.0, 2.0, 3.0, 1.0]))
    img.set_sform(img.affine, code=2)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "src.nii.gz")
    write_image(read_image(tmp_path / "src.nii.gz"), tmp_path / "out.nii.gz", extensions={"json": {"1": "liver"}})
    header = nib.load(tmp_path / "out.nii.gz").header
    assert int(header["sform_code"]) == 2 and int(header["qform_code"]) == 0
    assert b'"liver"' in header.extensions[0].get_content()
    affine3 = np.array([[0.5, 0, 10], [0, 0.5, 20], [0, 0, 1]])
    write_image(np.zeros((1, 4, 3), np.uint8), tmp_path / "flat.nii.gz", affine=affine3)
    expected = np.eye(4)
    expected[:2, :2], expected[:2, 3] = affine3[:2, :2], affine3[:2, 2]
    np.testing.assert_allclose(read_image(tmp_path / "flat.nii.gz").affine.numpy(), expected)
