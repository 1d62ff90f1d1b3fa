"""Read A, write B, read B: same array, same dtype, same affine (1e-5), for every pair of formats.

Each test writes one source A (all formats, all dtypes, several affines) and converts it to every
target B, so the whole matrix runs in a few seconds.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from medseg.io import read_image, write_image
from tests.io.helpers import (
    DTYPES,
    FORMATS_2D,
    FORMATS_3D,
    PIXEL_ONLY,
    affine_2d,
    affine_of_kind,
    destination,
    dicom_tolerance,
    volume,
)

ATOL = 1e-5


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def _assert_same(y, x, *, lossy_dicom_float: bool = False, where: str = "") -> None:
    assert tuple(y.shape) == tuple(x.shape), where
    assert y.meta["original_dtype"] == x.meta["original_dtype"], where
    assert y.dtype == x.dtype, where
    if lossy_dicom_float:
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=0, atol=dicom_tolerance(x.numpy()), err_msg=where)
    else:
        np.testing.assert_array_equal(y.numpy(), x.numpy(), err_msg=where)
    np.testing.assert_allclose(y.affine.numpy(), x.affine.numpy(), rtol=0, atol=ATOL, err_msg=where)


def _assert_same_world(y, x, where: str) -> None:
    """Same voxel values at the same world positions: identical, or with the third axis reversed."""
    if np.array_equal(y.numpy(), x.numpy()):
        np.testing.assert_allclose(y.affine.numpy(), x.affine.numpy(), rtol=0, atol=ATOL, err_msg=where)
        return
    np.testing.assert_array_equal(y.numpy(), np.flip(x.numpy(), axis=-1), err_msg=where)
    expected = x.affine.numpy().copy()
    expected[:, 3] = expected @ [0, 0, x.shape[-1] - 1, 1]
    expected[:3, 2] *= -1
    np.testing.assert_allclose(y.affine.numpy(), expected, rtol=0, atol=ATOL, err_msg=where)


def _read_source(tmp_path, source_fmt, data, affine):
    source = destination(tmp_path, "a", source_fmt)
    write_image(data, source, affine=affine)
    return read_image(source)


def _write_read(tmp_path, x, target_fmt):
    target = destination(tmp_path, f"b_{target_fmt.replace('.', '_')}", target_fmt)
    write_image(x, target)
    return read_image(target)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("source_fmt", FORMATS_3D)
def test_3d_every_pair_keeps_array_dtype_and_oblique_affine(tmp_path, source_fmt, dtype):
    rng = np.random.default_rng(_seed(source_fmt, dtype))
    data = volume(rng, dtype)
    affine = affine_of_kind("oblique", rng)
    x = _read_source(tmp_path, source_fmt, data, affine)
    # A itself holds what was written
    assert x.meta["original_dtype"] == dtype
    np.testing.assert_allclose(x.affine.numpy(), affine, rtol=0, atol=ATOL)
    if dtype == "float32" and source_fmt == "dicom":
        np.testing.assert_allclose(x.numpy(), data, rtol=0, atol=dicom_tolerance(data))
    else:
        np.testing.assert_array_equal(x.numpy(), data)
    for target_fmt in FORMATS_3D:
        y = _write_read(tmp_path, x, target_fmt)
        dicom_float = dtype == "float32" and "dicom" in (source_fmt, target_fmt)
        _assert_same(y, x, lossy_dicom_float=dicom_float, where=f"{source_fmt} -> {target_fmt}")


@pytest.mark.parametrize("kind", ["ras", "lps", "las"])
@pytest.mark.parametrize("source_fmt", FORMATS_3D)
def test_3d_every_pair_keeps_ras_lps_and_left_handed_affines(tmp_path, source_fmt, kind):
    rng = np.random.default_rng(_seed(source_fmt, kind))
    data = volume(rng, "int16", shape=(5, 4, 3))
    affine = affine_of_kind(kind, rng)
    x = _read_source(tmp_path, source_fmt, data, affine)
    for target_fmt in FORMATS_3D:
        where = f"{kind}: {source_fmt} -> {target_fmt}"
        y = _write_read(tmp_path, x, target_fmt)
        if kind == "las" and "dicom" in (source_fmt, target_fmt):
            # DICOM slices are always stacked along row x column: the image may come back with the third
            # axis reversed (see test_dicom.py); the value at each world position must still agree.
            _assert_same_world(y, x, where)
            continue
        np.testing.assert_allclose(x.affine.numpy(), affine, rtol=0, atol=ATOL, err_msg=where)
        _assert_same(y, x, where=where)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("source_fmt", FORMATS_2D)
def test_2d_every_pair_keeps_array_dtype_and_affine(tmp_path, source_fmt, dtype):
    if source_fmt == "png" and dtype not in ("uint8", "uint16"):
        pytest.skip("PNG holds uint8/uint16 only (other dtypes raise, see test_writers.py)")
    rng = np.random.default_rng(_seed("2d", source_fmt, dtype))
    data = volume(rng, dtype, shape=(7, 5))
    for target_fmt in FORMATS_2D:
        if target_fmt == "png" and dtype not in ("uint8", "uint16"):
            continue
        # PNG/TIFF keep pixels and spacing only, so pairs with them use an affine they can hold
        pixel_only = source_fmt in PIXEL_ONLY or target_fmt in PIXEL_ONLY
        affine = affine_2d("pixel" if pixel_only else "oblique")
        x = _read_source(tmp_path, source_fmt, data, affine)
        assert x.shape == (1, 7, 5)
        np.testing.assert_array_equal(x.numpy(), data)
        np.testing.assert_allclose(x.affine.numpy(), affine, rtol=0, atol=ATOL)
        _assert_same(_write_read(tmp_path, x, target_fmt), x, where=f"{source_fmt} -> {target_fmt}")


def test_jpeg_is_read_and_its_pixels_survive_every_target(tmp_path):
    rng = np.random.default_rng(5)
    source = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, size=(9, 12)).astype(np.uint8)).save(source, quality=80)
    x = read_image(source)
    assert x.shape == (1, 12, 9)  # (x = columns, y = rows), like nibabel and MONAI
    assert x.meta["original_dtype"] == "uint8"
    for target_fmt in FORMATS_2D:
        _assert_same(_write_read(tmp_path, x, target_fmt), x, where=f"jpg -> {target_fmt}")


def test_rgb_png_keeps_its_three_channels(tmp_path):
    rng = np.random.default_rng(6)
    source = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 255, size=(9, 12, 3)).astype(np.uint8), mode="RGB").save(source)
    x = read_image(source)
    assert x.shape == (3, 12, 9)
    for target_fmt in ("png", "tif", "mha", "nrrd", "nii.gz"):
        y = _write_read(tmp_path, x, target_fmt) if target_fmt != "nii.gz" else None
        if y is None:  # NIfTI has no 2D colour: (x, y, 1, C), read back with all channels
            target = tmp_path / "rgb.nii.gz"
            write_image(x, target)
            y = read_image(target, allow_multichannel=True)[..., 0]
        np.testing.assert_array_equal(y.numpy(), x.numpy(), err_msg=target_fmt)


@pytest.mark.parametrize("source_fmt", FORMATS_2D)
def test_2d_image_through_dicom_is_a_one_slice_series(tmp_path, source_fmt):
    """DICOM is a 3D format here: a 2D image becomes a one-slice series and reads back as (C, x, y, 1)."""
    rng = np.random.default_rng(_seed("2d-dicom", source_fmt))
    data = volume(rng, "uint16", shape=(7, 5))
    affine = affine_2d("pixel" if source_fmt in PIXEL_ONLY else "oblique")
    x = _read_source(tmp_path, source_fmt, data, affine)
    y = _write_read(tmp_path, x, "dicom")
    assert y.shape == (1, 7, 5, 1)
    np.testing.assert_array_equal(y.numpy()[..., 0], x.numpy())
    np.testing.assert_allclose(y.affine.numpy()[:, [0, 1, 3]], x.affine.numpy()[:, [0, 1, 3]], atol=ATOL)
    if source_fmt in PIXEL_ONLY:  # a one-slice volume is written to PNG/TIFF as a 2D image
        _assert_same(_write_read(tmp_path, y, source_fmt), x)


@pytest.mark.parametrize("target_fmt", ["mha", "nrrd", "dicom"])
def test_2d_slice_placed_obliquely_in_3d_keeps_its_world_position(tmp_path, target_fmt):
    """A 2D NIfTI slice with a 3D oblique affine cannot be a 2D ITK image: it is written as one slice."""
    rng = np.random.default_rng(8)
    affine = affine_of_kind("oblique", rng)
    data = volume(rng, "int16", shape=(7, 5))
    x = _read_source(tmp_path, "nii.gz", data, affine)
    y = _write_read(tmp_path, x, target_fmt)
    assert x.shape == (1, 7, 5) and y.shape == (1, 7, 5, 1)
    np.testing.assert_array_equal(y.numpy()[..., 0], x.numpy())
    np.testing.assert_allclose(y.affine.numpy()[:, [0, 1, 3]], affine[:, [0, 1, 3]], atol=ATOL)
