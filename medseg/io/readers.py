"""Read images from disk into a :class:`monai.data.MetaTensor` without losing geometry.

Every reader returns a channel-first tensor ``(C, *spatial)`` whose ``.affine`` is the 4x4 voxel-to-world
matrix in nibabel's RAS+ convention (array axes are x, y[, z] as in nibabel and MONAI, also for ITK
formats and 2D images). ``meta`` holds ``filename_or_obj``, ``format``, ``original_dtype`` (the on-disk
dtype, so a write restores it), ``spatial_shape``, ``spacing`` (one value per spatial axis) and
``space`` (``RAS``).

Before any voxel data is read, the header's claimed shape x dtype is checked against the file and the
memory available (:mod:`medseg.io.header`): header and gzip bombs are one line, exit 2, not a MemoryError.
Complex-valued images are refused. RGB NIfTI (RGB24/RGBA32) becomes 3/4 colour channels, like a colour
PNG (a 1-channel model then sees it converted to grey, with a warning).
"""
from __future__ import annotations

import gzip
import zlib
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io._sitk import array_from_sitk, error_detail
from medseg.io.dicom import read_dicom_series
from medseg.io.dicom_objects import dicom_object_kind, read_dicom_object
from medseg.io.formats import detect_format, split_ext
from medseg.io.geometry import is_singular, spacing_from_affine
from medseg.io.header import check_claim, open_nifti, read_header

if TYPE_CHECKING:
    from monai.data import MetaTensor

logger = get_logger(__name__)

# numpy dtypes torch cannot hold natively -> the smallest torch-friendly dtype that holds every value
_TORCH_SAFE = {np.dtype("uint16"): np.int32, np.dtype("uint32"): np.int64, np.dtype("bool"): np.uint8,
               np.dtype("int8"): np.int16, np.dtype("float16"): np.float32, np.dtype("uint64"): np.int64}


def read_image(
    path: str | PathLike,
    *,
    frame: int | None = None,
    series: str | None = None,
    allow_multichannel: bool = False,
) -> MetaTensor:
    """Read a NIfTI, NRRD, MetaImage, 2D image (PNG/TIFF/JPEG/BMP), DICOM file, or a DICOM series folder.

    A ``.dcm`` DICOM-SEG or RTSTRUCT file reads as a label map on its source series' grid (see
    :mod:`medseg.io.dicom_objects`).

    Args:
        path: the file, or a folder holding a DICOM series.
        frame: for a 4D file (or a 3D volume with vector pixels), the frame/channel to keep.
        series: for a DICOM folder with several series, the SeriesInstanceUID to read.
        allow_multichannel: keep all frames of a 4D file as channels instead of raising.
            (2D images keep their colour channels regardless.)

    Raises:
        MedsegError: a missing, corrupt or unsupported file, a 4D file without ``frame``, a singular affine,
            a DICOM folder that is empty or holds several series (without ``series``).
    """
    array, affine, meta = read_array(path, frame=frame, series=series, allow_multichannel=allow_multichannel)
    import torch  # here, not at the top: `medseg info` reads arrays without paying for torch and MONAI
    from monai.data import MetaTensor

    affine_t = torch.as_tensor(affine, dtype=torch.float64)
    meta["original_affine"] = affine_t.clone()
    return MetaTensor(torch.from_numpy(array), affine=affine_t, meta=meta)


class ImageArray(NamedTuple):
    """What :func:`read_array` returns: channel-first voxels, the 4x4 RAS affine, and the meta dict."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any]


def read_array(
    path: str | PathLike,
    *,
    frame: int | None = None,
    series: str | None = None,
    allow_multichannel: bool = False,
) -> ImageArray:
    """:func:`read_image` as numpy (same checks, same dtype rules, same meta less ``original_affine``):
    for callers that only look at voxels and geometry and should not import torch."""
    p = Path(path)
    if not p.exists():
        raise MedsegError("file not found", path=p, hint="check the path and the working directory")
    fmt = detect_format(p)
    try:
        if fmt != "dicom":
            header = read_header(p)
            if header is not None:
                check_claim(header)
        if fmt == "nifti":
            array, affine, extra = _read_nifti(p)
        elif fmt == "dicom":
            array, affine, extra = read_dicom_series(p, series)
        elif split_ext(p)[1] == ".dcm" and (kind := dicom_object_kind(p)) is not None:
            array, affine, extra = read_dicom_object(p, kind)  # DICOM-SEG / RTSTRUCT: a label map
        else:
            array, affine, extra = _read_itk(p)
    except MedsegError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise MedsegError(
            f"cannot read this {_kind(p, fmt)}: it is truncated, corrupt or not an image ({error_detail(exc)})",
            path=p,
            hint="re-export or re-download it, or check that its extension matches its content",
        ) from exc
    return _finish(p, array, affine, extra, frame=frame, allow_multichannel=allow_multichannel)


_KIND = {".nii": "NIfTI", ".nii.gz": "NIfTI", ".nrrd": "NRRD", ".nhdr": "NRRD", ".mha": "MetaImage",
         ".mhd": "MetaImage", ".dcm": "DICOM", ".tif": "TIFF", ".tiff": "TIFF", ".jpeg": "JPEG"}


def _kind(p: Path, fmt: str) -> str:
    ext = split_ext(p)[1]
    return "DICOM series" if fmt == "dicom" else f"{_KIND.get(ext, ext.lstrip('.').upper())} file"


def _finish(p, array, affine, extra, *, frame, allow_multichannel) -> ImageArray:
    if array.dtype.byteorder not in "=|":  # big-endian files: torch takes native byte order only
        array = array.astype(array.dtype.newbyteorder("="))
    has_frames = extra.pop("has_frames", False)
    vector = extra.pop("vector", False)
    colour = extra.pop("colour", False)
    if has_frames and array.shape[-1] == 1:
        array, has_frames = array[..., 0], False
    ndim = array.ndim - (1 if has_frames else 0)
    if ndim not in (2, 3):
        raise MedsegError(f"has {ndim} spatial dimensions (shape {tuple(array.shape)}), expected 2D or 3D",
                          path=p, hint="convert it to a 2D or 3D image first")
    if has_frames:
        count = array.shape[-1]
        if frame is not None:
            if not 0 <= frame < count:
                raise MedsegError(f"frame {frame} is out of range, the file has {count} (0..{count - 1})",
                                  path=p, hint=f"pass --frame between 0 and {count - 1}")
            array = array[..., frame][None]
        elif allow_multichannel or colour or (vector and ndim == 2):
            array = np.moveaxis(array, -1, 0)
        else:
            raise MedsegError(
                f"is 4D with shape {tuple(array.shape)} ({count} frames/channels), a 3D volume is expected",
                path=p,
                hint="pick one frame/channel with --frame N (frame= in Python)",
            )
    else:
        if frame not in (None, 0):
            raise MedsegError(f"has no frames to pick from (shape {tuple(array.shape)})", path=p,
                              hint="drop --frame")
        array = array[None]

    if is_singular(affine, ndim):
        raise MedsegError(
            "has a singular or non-finite affine (voxel-to-world matrix): zero spacing or collapsed axes",
            path=p,
            hint="fix the header's spacing/direction, e.g. re-save it with a correct pixdim/sform",
        )
    original_dtype = extra.pop("original_dtype", array.dtype)
    if array.dtype.kind == "f":
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if bad:
            logger.warning("%s: %d NaN/inf voxels (%.3g%% of the image); they are kept as they are, "
                           "replace them (e.g. numpy.nan_to_num) before processing", p, bad,
                           100.0 * bad / array.size)
    safe = _TORCH_SAFE.get(array.dtype)
    if safe is not None:
        array = array.astype(safe)
    meta = {
        "filename_or_obj": str(p),
        "format": "dicom" if p.is_dir() else split_ext(p)[1].lstrip("."),
        "original_dtype": str(np.dtype(original_dtype)),
        "spatial_shape": tuple(int(s) for s in array.shape[1:]),
        "spacing": spacing_from_affine(affine, ndim),
        "space": "RAS",
        **extra,
    }
    return ImageArray(np.ascontiguousarray(array), np.asarray(affine, dtype=np.float64), meta)


def _read_nifti(p: Path):
    img = open_nifti(p)
    array = np.asanyarray(img.dataobj)
    colour = array.dtype.names is not None
    if colour:  # RGB24 / RGBA32: a structured dtype -> one uint8 channel per component (last axis)
        array = np.stack([array[name] for name in array.dtype.names], axis=-1)
    extra: dict = {
        "nifti_sform_code": int(img.header["sform_code"]),
        "nifti_qform_code": int(img.header["qform_code"]),
    }
    on_disk = img.get_data_dtype()
    if array.dtype != on_disk:  # scl_slope/scl_inter applied: a writer may store the raw type again
        extra["original_dtype"] = on_disk.newbyteorder("=") if on_disk.kind in "iuf" else array.dtype
    if array.ndim == 5 and array.shape[3] == 1:  # NIfTI vector convention (x, y, z, 1, C)
        array = array[:, :, :, 0, :]
    if array.ndim == 4 or colour:
        extra["has_frames"] = True
        extra["colour"] = colour
    return array, np.asarray(img.affine, dtype=np.float64), extra


def _read_itk(p: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    image = reader.Execute()
    array, affine, has_frames = array_from_sitk(image)
    if array.dtype == np.float64 and split_ext(p)[1] == ".dcm":  # GDCM's rescaled pixels, as for series
        array = array.astype(np.float32)
    vector = image.GetNumberOfComponentsPerPixel() > 1
    return array, affine, {"has_frames": has_frames, "vector": vector}
