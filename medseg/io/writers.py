"""Write a :class:`MetaTensor` (or an array plus an affine) to disk, atomically, keeping geometry.

The format follows the path: ``.nii``/``.nii.gz`` (nibabel), ``.nrrd``/``.nhdr``/``.mha``/``.mhd``
(SimpleITK), ``.png``/``.tif`` (2D pixels and spacing only), or a folder (a DICOM series). The on-disk
dtype is the tensor's own, or ``meta['original_dtype']`` when that still holds every value (so read A,
write B gives back A's dtype). Nothing is left under the final name when a write fails.
"""
from __future__ import annotations

import json
import sys
from os import PathLike
from pathlib import Path

import numpy as np

from medseg.core.atomic import atomic_path
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io._sitk import error_detail, sitk_from_array
from medseg.io._staging import publish_files, publish_folder, staging_folder
from medseg.io.formats import DETACHED_HEADER, IMAGE_2D_DTYPES, detect_format, split_ext
from medseg.io.geometry import (
    as_affine4,
    complete_slice_axis,
    fits_itk_2d,
    has_shear,
    itk_from_affine,
)
from medseg.io.readers import ImageArray

logger = get_logger(__name__)

_SMALL_INTS = ("uint8", "int8", "uint16", "int16", "uint32", "int32")


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
        path: destination; its extension selects NIfTI, NRRD/MHA/MHD or PNG/TIFF; a folder (a path
            ending in ``/`` or without extension) gets a DICOM series.
        affine: 4x4 RAS voxel-to-world matrix (identity when neither this nor the image has one).
        dtype: on-disk dtype; default: ``meta['original_dtype']`` if lossless, else the array's own.
        extensions: NIfTI only: ``{"json": dict}`` stored as a JSON header extension (e.g. label names).

    Returns:
        The path written.

    Raises:
        MedsegError: the format cannot hold this image (dtype, shear, channels, 3D into PNG), a DICOM
            folder that is not empty, or the write itself failed (disk full, no permission).
    """
    out = Path(path)
    fmt = detect_format(path, for_writing=True)
    if isinstance(image, ImageArray):  # from read_array: numpy all the way (convert needs no torch)
        image, affine, meta = image.array, image.affine if affine is None else affine, image.meta
    else:
        meta = getattr(image, "meta", None) or {}
    array, affine = _prepare(image, affine, dtype, meta, out)
    if array.ndim not in (3, 4):
        raise MedsegError(f"expected a channel-first array (C, x, y[, z]), got shape {array.shape}", path=out,
                          hint="add a channel axis, e.g. array[None]")
    try:
        if fmt == "dicom":
            _write_dicom(array, affine, out, meta)
        elif fmt == "nifti":
            with atomic_path(out) as temp:
                _write_nifti(array, affine, temp, extensions, meta)
        else:
            image2d = fmt == "image2d"
            itk_image = _itk_image(array, affine, out, image2d=image2d, explicit_dtype=dtype is not None)
            if split_ext(out)[1] in DETACHED_HEADER:
                with staging_folder(out) as staged:
                    _execute_itk(itk_image, staged / out.name, compress=True)
                    publish_files(staged, out.parent, last=out.name)
            else:
                with atomic_path(out) as temp:
                    _execute_itk(itk_image, temp, compress=not image2d)
    except MedsegError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        raise MedsegError(f"could not be written ({error_detail(exc)})", path=out,
                          hint="check free disk space, write permission and the folder") from exc
    logger.debug("wrote %s %s %s", out, tuple(array.shape), array.dtype)
    return out


def _prepare(image, affine, dtype, meta, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """The channel-first numpy array in its on-disk dtype, and the 4x4 RAS affine."""
    if affine is None:
        affine = getattr(image, "affine", None)
    try:
        affine = np.eye(4) if affine is None else as_affine4(affine)
    except ValueError as exc:
        raise MedsegError(str(exc), path=out, hint="pass a 4x4 voxel-to-world matrix") from exc
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported: never import it here
    if torch is not None and isinstance(image, torch.Tensor):
        tensor = image.as_tensor() if hasattr(image, "as_tensor") else image
        tensor = tensor.detach().cpu()
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
        array = tensor.numpy()
    else:
        array = np.asarray(image)
    if dtype is None and "original_dtype" in meta:
        try:
            candidate = np.dtype(str(meta["original_dtype"]))
        except TypeError:  # not a numpy dtype name (e.g. set by another library): ignore it
            candidate = None
        if candidate is not None and _fits(array, candidate):
            dtype = candidate
    if dtype is not None:
        array = array.astype(np.dtype(dtype), copy=False)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype.kind == "b":
        array = array.astype(np.uint8)
    return array, affine


def _fits(array: np.ndarray, dtype: np.dtype) -> bool:
    """True when casting ``array`` to ``dtype`` changes no value."""
    if array.dtype == dtype or array.size == 0:
        return True
    if dtype.kind == "b":
        return bool(np.isin(array, (0, 1)).all())
    if dtype.kind in "iu":
        if array.dtype.kind == "f" and not (np.isfinite(array).all() and np.array_equal(array, np.round(array))):
            return False
        info = np.iinfo(dtype)
        return bool(array.min() >= info.min and array.max() <= info.max)
    if dtype.kind == "f":
        return bool(np.array_equal(array.astype(dtype).astype(array.dtype), array, equal_nan=True))
    return False


def _narrowest(array: np.ndarray, allowed: tuple[str, ...]) -> np.dtype | None:
    """The first of ``allowed`` integer dtypes that holds every value of an integer array."""
    for name in allowed:
        if name in _SMALL_INTS and _fits(array, np.dtype(name)):
            return np.dtype(name)
    return None


def _write_nifti(array, affine, temp: Path, extensions: dict | None, meta: dict) -> None:
    import nibabel as nib

    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:  # nibabel refuses 64-bit ints
        array = array.astype(_narrowest(array, ("uint8", "int16", "uint16", "int32", "uint32")) or np.float64)
    if array.shape[0] == 1:
        data = array[0]
    else:  # channels last; a 2D multi-channel image gets a singleton z so it is not read as a volume
        data = np.moveaxis(array if array.ndim == 4 else array[..., None], 0, -1)
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(data.dtype)
    sform = int(meta.get("nifti_sform_code", 0)) or 1
    qform = int(meta.get("nifti_qform_code", sform))
    img.set_sform(affine, code=sform)
    img.set_qform(affine, code=qform)
    img.header["xyzt_units"] = 2 | 8  # mm, seconds
    if extensions and "json" in extensions:
        payload = json.dumps(extensions["json"]).encode("utf-8")
        img.header.extensions.append(nib.nifti1.Nifti1Extension(6, payload))  # 6 = comment
    nib.save(img, str(temp))


def _itk_image(array, affine, out: Path, *, image2d: bool, explicit_dtype: bool):
    """Check that the format can hold the image and build the SimpleITK image."""
    ndim = array.ndim - 1
    if image2d:
        if ndim == 3:
            if array.shape[3] != 1:
                raise MedsegError(f"cannot write a 3D image of shape {array.shape[1:]} as a 2D file", path=out,
                                  hint="write .nii.gz/.nrrd/.mha, or pick one slice")
            array = array[..., 0]
        array = _image2d_dtype(array, out, explicit_dtype)
        _warn_lost_2d_geometry(affine, out)
        return sitk_from_array(array, affine, dim=2, geometry=False)
    dim = 2 if ndim == 2 and fits_itk_2d(affine) else 3  # a 2D slice placed obliquely in 3D: one-slice 3D
    if ndim == 2 and dim == 3:
        affine = complete_slice_axis(affine)
    if has_shear(affine, dim):
        raise MedsegError("the affine has shear, which NRRD/MetaImage cannot store", path=out,
                          hint="write NIfTI instead, or resample to an orthogonal grid")
    return sitk_from_array(array, affine, dim=dim)


def _image2d_dtype(array: np.ndarray, out: Path, explicit: bool) -> np.ndarray:
    ext = split_ext(out)[1]
    allowed = IMAGE_2D_DTYPES[ext]
    if array.dtype.name in allowed:
        return array
    narrow = None if explicit or array.dtype.kind not in "iub" else _narrowest(array, allowed)
    if narrow is None:
        alternative = "write .tif for (u)int8/16/32 and float32, or .nii.gz/.nrrd/.mha for anything"
        raise MedsegError(f"{ext} cannot hold {array.dtype} pixels (it holds {', '.join(allowed)})",
                          path=out, hint=alternative)
    return array.astype(narrow)


def _warn_lost_2d_geometry(affine: np.ndarray, out: Path) -> None:
    """PNG/TIFF store spacing only: warn when the origin or the axis directions would be lost."""
    _, spacing, _ = itk_from_affine(affine, dim=2)
    block, origin = affine[:2, :2], affine[:2, 3]
    keeps = (np.allclose(block, np.diag(spacing), atol=1e-6) or np.allclose(block, -np.diag(spacing), atol=1e-6))
    if not keeps or not np.allclose(origin, 0, atol=1e-6):
        logger.warning("%s: %s stores pixels and spacing only; the origin and axis directions are dropped "
                       "(write .nii.gz, .nrrd or .mha to keep them)", out, split_ext(out)[1])


def _execute_itk(itk_image, target: Path, *, compress: bool) -> None:
    import SimpleITK as sitk

    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(target))
    writer.SetUseCompression(compress)
    writer.Execute(itk_image)


def _write_dicom(array, affine, out: Path, meta: dict) -> None:
    from medseg.io.dicom import write_dicom_series

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedsegError("exists and is not an empty folder; a DICOM series needs a folder of its own",
                          path=out, hint="give a new folder name, or remove the existing one")
    if array.ndim == 3:
        affine = complete_slice_axis(affine)
    with staging_folder(out) as staged:
        try:
            write_dicom_series(array, affine, staged, modality=meta.get("dicom_modality") or "OT")
        except MedsegError as exc:  # name the destination, not the staging folder
            raise MedsegError(exc.message, path=out, hint=exc.hint) from None
        publish_folder(staged, out)
