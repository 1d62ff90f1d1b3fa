"""Write a :class:`MetaTensor` (or an array plus an affine) to disk, atomically, keeping geometry.

The file format follows the extension. The on-disk dtype is the tensor's own, or ``meta['original_dtype']``
when it still holds every value (so read A, write B gives back A's dtype).
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import torch

from medseg.core.atomic import atomic_path
from medseg.core.errors import MedsegError
from medseg.io.formats import detect_format
from medseg.io.geometry import itk_from_affine


def write_image(
    image,
    path: str | PathLike,
    *,
    affine: np.ndarray | None = None,
    dtype: str | np.dtype | None = None,
    extensions: dict | None = None,
) -> Path:
    """Write ``image`` (MetaTensor, tensor or array, channel-first ``(C, *spatial)``) to ``path``.

    Args:
        image: the data; a MetaTensor's own affine is used unless ``affine`` is given.
        path: destination; its extension selects NIfTI, NRRD/MHA/MHD or PNG/JPEG/TIFF.
        affine: 4x4 RAS voxel-to-world matrix (required for plain arrays unless identity is wanted).
        dtype: on-disk dtype; default: ``meta['original_dtype']`` if lossless, else the array's own.
        extensions: NIfTI only: ``{"json": dict}`` stored as a JSON header extension (e.g. label names).

    Returns:
        The path written. The write is atomic: on failure no partial file is left behind.
    """
    out = Path(path)
    fmt = detect_format(out, for_writing=True)
    array, affine, dtype = _prepare(image, affine, dtype)
    if array.ndim < 3:
        raise MedsegError(f"expected a channel-first array (C, *spatial), got shape {array.shape}", path=out)
    with atomic_path(out) as temp:
        if fmt == "nifti":
            _write_nifti(array, affine, temp, extensions)
        elif fmt == "image2d":
            _write_itk(array, affine, temp, two_d=True)
        else:
            _write_itk(array, affine, temp, two_d=False)
    return out


def _prepare(image, affine, dtype):
    meta = getattr(image, "meta", {}) or {}
    if affine is None:
        affine = getattr(image, "affine", None)
    affine = np.eye(4) if affine is None else np.asarray(
        affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64
    )
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy() if not hasattr(image, "as_tensor") else image.as_tensor().cpu().numpy()
    else:
        array = np.asarray(image)
    if dtype is None and "original_dtype" in meta:
        candidate = np.dtype(meta["original_dtype"])
        if _fits(array, candidate):
            dtype = candidate
    if dtype is not None:
        array = array.astype(np.dtype(dtype), copy=False)
    return array, affine, array.dtype


def _fits(array: np.ndarray, dtype: np.dtype) -> bool:
    if array.dtype == dtype:
        return True
    if array.size == 0:
        return True
    if dtype.kind in "iub":
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            return False
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        lo, hi = array.min(), array.max()
        return info is None or (lo >= info.min and hi <= info.max)
    if dtype.kind == "f":
        return np.array_equal(array.astype(dtype).astype(array.dtype), array)
    return False


def _write_nifti(array, affine, temp: Path, extensions: dict | None) -> None:
    import json

    import nibabel as nib

    data = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header["xyzt_units"] = 2 | 8  # mm, seconds
    if extensions and "json" in extensions:
        payload = json.dumps(extensions["json"]).encode("utf-8")
        img.header.extensions.append(nib.nifti1.Nifti1Extension(6, payload))  # 6 = comment
    nib.save(img, str(temp))


def _write_itk(array, affine, temp: Path, *, two_d: bool) -> None:
    import SimpleITK as sitk

    channels = array.shape[0]
    spatial = array.shape[1:]
    if two_d and len(spatial) == 3:
        if spatial[2] != 1:
            raise MedsegError(f"cannot write a 3D image of shape {spatial} as a 2D file", path=temp,
                              hint="write NIfTI/NRRD/MHA, or pick one slice")
        array = array[..., 0]
        spatial = spatial[:2]
    dim = len(spatial)
    if channels == 1:
        data = np.transpose(array[0], tuple(range(dim - 1, -1, -1)))  # (x, y[, z]) -> (z, y, x)
        image = sitk.GetImageFromArray(data, isVector=False)
    else:
        data = np.transpose(array, (*range(dim, 0, -1), 0))  # (C, x, y[, z]) -> (z, y, x, C)
        image = sitk.GetImageFromArray(np.ascontiguousarray(data), isVector=True)
    origin, spacing, direction = itk_from_affine(affine, dim=dim)
    if not two_d:
        _check_orthonormal(direction, dim, temp)
        image.SetOrigin(origin)
        image.SetSpacing(spacing)
        image.SetDirection(direction)
    elif not np.allclose(affine, np.eye(4), atol=1e-6) and not np.allclose(
        np.abs(np.asarray(direction).reshape(2, 2)), np.eye(2), atol=1e-6
    ):
        raise MedsegError("2D image formats cannot store an oblique direction", path=temp, hint="write NIfTI")
    else:
        image.SetSpacing(spacing)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(temp))
    writer.SetUseCompression(True)
    writer.Execute(image)


def _check_orthonormal(direction, dim, temp) -> None:
    d = np.asarray(direction).reshape(dim, dim)
    if not np.allclose(d @ d.T, np.eye(dim), atol=1e-4):
        raise MedsegError(
            "the affine has shear, which NRRD/MetaImage cannot store",
            path=temp,
            hint="write NIfTI instead, or resample to an orthogonal grid",
        )
