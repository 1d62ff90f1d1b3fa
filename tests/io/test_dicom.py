"""DICOM series: the geometry tags written, series selection, left-handed volumes, float pixels."""
from __future__ import annotations

import logging
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.core.errors import MedsegError
from medseg.io import list_dicom_series, read_image, write_image
from medseg.io.geometry import itk_from_affine
from tests.conftest import random_oblique_affine
from tests.io.helpers import affine_of_kind, dicom_tolerance, volume, write_series

UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _tags(path) -> dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split("\\")])


def test_each_slice_carries_position_orientation_spacing_and_series_uid(tmp_path, rng):
    affine = random_oblique_affine(rng, spacing=(0.7, 1.3, 2.5))
    data = volume(rng, "int16", shape=(6, 5, 4))
    write_image(data, tmp_path / "series", affine=affine)
    files = sorted((tmp_path / "series").iterdir())
    assert len(files) == 4
    origin, spacing, direction = (np.asarray(v) for v in itk_from_affine(affine))
    direction = direction.reshape(3, 3)
    tags = [_tags(f) for f in files]
    for k, tag in enumerate(tags):
        expected_position = origin + k * spacing[2] * direction[:, 2]
        np.testing.assert_allclose(_numbers(tag["0020|0032"]), expected_position, atol=1e-6)
        np.testing.assert_allclose(_numbers(tag["0020|0037"]), [*direction[:, 0], *direction[:, 1]], atol=1e-9)
        np.testing.assert_allclose(_numbers(tag["0028|0030"]), [1.3, 0.7])  # row spacing, column spacing
        assert float(tag["0018|0050"]) == pytest.approx(2.5)
        assert int(tag["0020|0013"]) == k + 1
        assert all(len(v) <= 16 for v in tag["0020|0032"].split("\\"))  # DICOM decimal strings
    series_uids = {t["0020|000e"] for t in tags}
    assert len(series_uids) == 1 and UID.match(series_uids.pop())
    sop_uids = [t["0008|0018"] for t in tags]
    assert len(set(sop_uids)) == 4 and all(UID.match(u) and len(u) <= 64 for u in sop_uids)


def test_oblique_direction_survives_a_write_and_read(tmp_path, rng):
    affine = random_oblique_affine(rng)
    data = volume(rng, "uint16")
    write_image(data, tmp_path / "series", affine=affine)
    image = read_image(tmp_path / "series")
    np.testing.assert_array_equal(image.numpy(), data)
    np.testing.assert_allclose(image.affine.numpy(), affine, atol=1e-5)
    assert image.meta["format"] == "dicom" and image.meta["dicom_modality"] == "OT"


def test_left_handed_volume_comes_back_right_handed_with_the_same_world_geometry(tmp_path, rng):
    affine = affine_of_kind("las", rng)
    data = volume(rng, "int16", shape=(5, 4, 3))
    write_image(data, tmp_path / "series", affine=affine)
    image = read_image(tmp_path / "series")
    np.testing.assert_array_equal(image.numpy(), data[..., ::-1])
    expected = affine.copy()
    expected[:, 3] = affine @ [0, 0, 2, 1]
    expected[:3, 2] *= -1
    np.testing.assert_allclose(image.affine.numpy(), expected, atol=1e-5)


def test_float_pixels_are_kept_to_one_rescale_step_and_read_as_float32(tmp_path, rng):
    data = (rng.normal(size=(1, 6, 5, 4)) * 300 + 40).astype(np.float32)
    write_image(data, tmp_path / "series", affine=random_oblique_affine(rng))
    image = read_image(tmp_path / "series")
    assert image.dtype.is_floating_point and image.meta["original_dtype"] == "float32"
    error = np.abs(image.numpy() - data).max()
    assert error <= dicom_tolerance(data)
    assert error < 1e-6 * np.abs(data).max()


def test_several_series_are_listed_and_one_is_picked_by_uid(tmp_path, rng):
    folder = tmp_path / "mixed"
    folder.mkdir()
    written = {}
    for name in ("first", "second"):
        data = write_series(tmp_path / name, rng)
        for file in (tmp_path / name).iterdir():
            shutil.copy(file, folder / f"{name}_{file.name}")
        uid = list_dicom_series(tmp_path / name)[0].uid
        written[uid] = data
    listed = list_dicom_series(folder)
    assert {s.uid for s in listed} == set(written) and all(s.files == 4 for s in listed)
    with pytest.raises(MedsegError) as info:
        read_image(folder)
    message = str(info.value)
    assert "2 DICOM series" in message and "--series" in message and "\n" not in message
    assert all(uid in message for uid in written)
    for uid, data in written.items():
        image = read_image(folder, series=uid)
        np.testing.assert_array_equal(image.numpy(), data)
        assert image.meta["dicom_series"] == uid
    with pytest.raises(MedsegError, match="has no DICOM series 1.2.3"):
        read_image(folder, series="1.2.3")


def test_a_missing_slice_is_reported_as_uneven_spacing(tmp_path, rng, monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)
    write_series(tmp_path / "series", rng, shape=(4, 4, 6))
    sorted((tmp_path / "series").iterdir())[2].unlink()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        image = read_image(tmp_path / "series")
    assert image.shape[-1] == 5
    assert "not evenly spaced" in caplog.text


def test_write_refuses_a_non_empty_folder_and_multichannel_images(tmp_path, rng):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("do not touch")
    with pytest.raises(MedsegError, match="not an empty folder"):
        write_image(volume(rng, "int16"), occupied)
    assert sorted(p.name for p in occupied.iterdir()) == ["keep.txt"]
    with pytest.raises(MedsegError, match="--frame"):
        write_image(np.zeros((3, 4, 4, 4), np.int16), tmp_path / "rgb_series")
    with pytest.raises(MedsegError, match="NaN"):
        write_image(np.full((1, 4, 4, 2), np.nan, np.float32), tmp_path / "nan_series")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]  # nothing else left behind


def test_an_existing_empty_folder_and_a_trailing_slash_both_mean_dicom(tmp_path, rng):
    (tmp_path / "empty").mkdir()
    data = volume(rng, "uint8")
    write_image(data, tmp_path / "empty")
    write_image(data, f"{tmp_path / 'with_slash'}/")
    for name in ("empty", "with_slash"):
        np.testing.assert_array_equal(read_image(tmp_path / name).numpy(), data)


def test_a_single_dicom_file_reads_as_its_own_slice(tmp_path, rng):
    affine = random_oblique_affine(rng)
    data = volume(rng, "int16", shape=(6, 5, 4))
    write_image(data, tmp_path / "series", affine=affine)
    third = sorted((tmp_path / "series").iterdir())[2]
    image = read_image(third)
    assert image.shape == (1, 6, 5, 1)
    np.testing.assert_array_equal(image.numpy()[..., 0], data[..., 2])
    np.testing.assert_allclose(image.affine.numpy()[:, :2], affine[:, :2], atol=1e-5)
    np.testing.assert_allclose(image.affine.numpy()[:3, 3], (affine @ [0, 0, 2, 1])[:3], atol=1e-5)
