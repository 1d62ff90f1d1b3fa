"""Read images from disk into a :class:`monai.data.MetaTensor` without losing geometry.

Every reader returns a channel-first tensor ``(C, *spatial)`` whose ``.affine`` is the 4x4 voxel-to-world
matrix in nibabel's RAS+ convention (array axes are x, y[, z] as in nibabel and MONAI, also for ITK
formats and 2D images). ``meta`` holds ``filename_or_obj``, ``format``, ``original_dtype`` (so a write
restores the on-disk dtype), ``spatial_shape`` and ``spacing``.
"""
from __future__ import annotations

import zlib
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io.formats import detect_format
from medseg.io.geometry import affine_from_itk, spacing_from_affine

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
    """Read a NIfTI, NRRD, MetaImage, 2D image file, or a DICOM series folder.

    Args:
        path: the file, or a folder holding one DICOM series.
        frame: for a 4D file, the frame/channel to keep (the result is then 3D).
        series: for a DICOM folder with several series, the SeriesInstanceUID to read.
        allow_multichannel: keep all frames of a 4D file as channels instead of raising.

    Raises:
        MedsegError: a missing, corrupt or unsupported file, a 4D file without ``frame``, a singular affine.
    """
    p = Path(path)
    if not p.exists():
        raise MedsegError("file not found", path=p, hint="check the path")
    fmt = detect_format(p)
    try:
        if fmt == "nifti":
            array, affine, extra = _read_nifti(p)
        elif fmt == "dicom":
            array, affine, extra = _read_dicom(p, series)
        else:
            array, affine, extra = _read_itk(p, fmt)
    except MedsegError:
        raise
    except (EOFError, zlib.error, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise MedsegError(
            f"cannot read this {fmt} file, it looks truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'})",
            path=p,
            hint="re-export or re-download the file",
        ) from exc
    return _to_metatensor(p, fmt, array, affine, extra, frame=frame, allow_multichannel=allow_multichannel)


def _to_metatensor(p, fmt, array, affine, extra, *, frame, allow_multichannel) -> MetaTensor:
    channel_axis = extra.pop("channel_axis", None)
    if channel_axis is not None:  # vector pixels (RGB): channels first
        array = np.moveaxis(array, channel_axis, 0)
    elif array.ndim == 4:
        if frame is not None:
            if not 0 <= frame < array.shape[3]:
                raise MedsegError(f"frame {frame} out of range, the file has {array.shape[3]}", path=p)
            array = array[..., frame]
            array = array[None]
        elif allow_multichannel:
            array = np.moveaxis(array, 3, 0)
        else:
            raise MedsegError(
                f"is 4D with shape {tuple(array.shape)}, a 3D volume is expected",
                path=p,
                hint="pick one frame/channel with --frame N (frame= in Python)",
            )
    elif array.ndim in (2, 3):
        array = array[None]
    else:
        raise MedsegError(f"has {array.ndim} dimensions, expected 2D or 3D", path=p)

    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise MedsegError(
            "has a singular or non-finite affine (voxel-to-world matrix)",
            path=p,
            hint="fix the header's spacing/direction, e.g. re-save it with correct pixdim or sform",
        )
    original_dtype = array.dtype
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            logger.warning("%s: %d NaN/inf voxels (%.3g%% of the image)", p, bad, 100.0 * bad / array.size)
    safe = _TORCH_SAFE.get(array.dtype)
    if safe is not None:
        array = array.astype(safe)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    meta = {
        "filename_or_obj": str(p),
        "format": "dicom" if p.is_dir() else p.name,
        "original_dtype": str(original_dtype),
        "spatial_shape": tuple(int(s) for s in array.shape[1:]),
        "spacing": spacing_from_affine(affine),
        "original_affine": torch.as_tensor(affine, dtype=torch.float64),
        **extra,
    }
    return MetaTensor(tensor, affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)


def _read_nifti(p: Path):
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        img = nib.load(str(p))
        array = np.asanyarray(img.dataobj)
    except ImageFileError as exc:
        raise MedsegError(
            "is not a NIfTI file (nibabel cannot read its header)",
            path=p,
            hint="check that it really is NIfTI, or give it its true extension",
        ) from exc
    extra = {}
    sform_code = int(img.header.get("sform_code", 0)) if hasattr(img.header, "get") else 0
    extra["nifti_sform_code"] = sform_code
    return array, np.asarray(img.affine, dtype=np.float64), extra


def _read_itk(p: Path, fmt: str):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    image = reader.Execute()
    return _from_sitk(image)


def _from_sitk(image):
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image)  # (z, y, x[, components])
    ncomp = image.GetNumberOfComponentsPerPixel()
    extra = {}
    if ncomp > 1:
        array = np.moveaxis(array, -1, 0)  # components first
        array = np.transpose(array, (0, *range(array.ndim - 1, 0, -1)))
        extra["channel_axis"] = 0
    else:
        array = np.transpose(array, tuple(range(array.ndim - 1, -1, -1)))
    affine = affine_from_itk(image.GetOrigin()[:3], image.GetSpacing()[:3], _direction3(image))
    return array, affine, extra


def _direction3(image):
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection()).reshape(dim, dim)
    return direction[: min(dim, 3), : min(dim, 3)].ravel()


def list_dicom_series(folder: str | PathLike) -> list[tuple[str, int, str]]:
    """(SeriesInstanceUID, number of files, description) for each DICOM series in a folder."""
    import SimpleITK as sitk

    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    out = []
    for uid in uids:
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        description = ""
        try:
            header = sitk.ImageFileReader()
            header.SetFileName(files[0])
            header.ReadImageInformation()
            if header.HasMetaDataKey("0008|103e"):
                description = header.GetMetaData("0008|103e").strip()
        except RuntimeError:
            pass
        out.append((uid, len(files), description))
    return out


def _read_dicom(folder: Path, series: str | None):
    import SimpleITK as sitk

    found = list_dicom_series(folder)
    if not found:
        raise MedsegError(
            "holds no DICOM series" if any(folder.iterdir()) else "is an empty folder",
            path=folder,
            hint="point to a folder of .dcm files from one series, or to an image file",
        )
    if series is None:
        if len(found) > 1:
            listing = "; ".join(f"{uid} ({n} files{', ' + d if d else ''})" for uid, n, d in found)
            raise MedsegError(
                f"holds {len(found)} DICOM series: {listing}",
                path=folder,
                hint="pick one with --series UID (series= in Python)",
            )
        series = found[0][0]
    elif series not in {uid for uid, _, _ in found}:
        raise MedsegError(f"has no series {series}; found {[u for u, _, _ in found]}", path=folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series))
    image = reader.Execute()
    array, affine, extra = _from_sitk(image)
    extra["dicom_series"] = series
    return array, affine, extra
