"""DICOM series folders: list the series, read one, write a volume as a new series (one file per slice).

Reading uses SimpleITK's ImageSeriesReader (GDCM sorts the slices along the slice normal). Writing stores
each slice with the geometry tags readers rely on (ImagePositionPatient, ImageOrientationPatient,
PixelSpacing, SliceThickness, SpacingBetweenSlices, a fresh SeriesInstanceUID), so oblique volumes survive.

Pixel types: (u)int8/16/32 are stored as they are; float volumes are stored as 32-bit integers with a
RescaleSlope/RescaleIntercept chosen from the value range (error at most one step, range / 2**32) and read
back as float32. DICOM slice order is always right-handed (normal = row x column direction): a volume
whose third axis points the other way reads back with its slices reversed and the matching affine, i.e.
the same image in world space.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io._sitk import array_from_sitk
from medseg.io.geometry import has_shear, itk_from_affine

logger = get_logger(__name__)

_INT_RANGE = 2**31 - 4096  # quantisation range for float pixels, with a margin for DS rounding


class DicomSeries(NamedTuple):
    """One series found in a folder."""

    uid: str
    files: int
    description: str


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """Silence ITK's own warnings on stderr (medseg reports problems itself, through logging/errors)."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def list_dicom_series(folder: str | PathLike) -> list[DicomSeries]:
    """(SeriesInstanceUID, number of files, SeriesDescription) for each DICOM series in a folder."""
    import SimpleITK as sitk

    out = []
    with quiet_itk():
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
            out.append(DicomSeries(uid, len(files), _tag(files[0], "0008|103e")))
    return out


def _tag(file: str, key: str) -> str:
    import SimpleITK as sitk

    try:
        header = sitk.ImageFileReader()
        header.SetFileName(file)
        header.ReadImageInformation()
        return header.GetMetaData(key).strip() if header.HasMetaDataKey(key) else ""
    except RuntimeError:
        return ""


def read_dicom_series(folder: Path, series: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(array (x, y, z), RAS affine, extra meta) of one series in ``folder``; raises MedsegError."""
    import SimpleITK as sitk

    if not any(folder.iterdir()):
        raise MedsegError("is an empty folder", path=folder,
                          hint="point to a folder of DICOM files from one series, or to an image file")
    found = list_dicom_series(folder)
    if not found:
        raise MedsegError(
            "holds no DICOM series (no readable DICOM files directly inside it)",
            path=folder,
            hint="point to a folder of DICOM files from one series, or to an image file",
        )
    uids = [s.uid for s in found]
    if series is None:
        if len(found) > 1:
            listing = "; ".join(f"{s.uid} ({s.files} files{', ' + s.description if s.description else ''})"
                                for s in found)
            raise MedsegError(f"holds {len(found)} DICOM series: {listing}", path=folder,
                              hint="pick one with --series UID (series= in Python)")
        series = uids[0]
    elif series not in uids:
        raise MedsegError(f"has no DICOM series {series}; it holds {', '.join(uids)}", path=folder,
                          hint="pass one of these UIDs to --series")
    with quiet_itk():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        reader.MetaDataDictionaryArrayUpdateOn()
        image = reader.Execute()
    _warn_uneven_slices(reader, image, folder, series)
    array, affine, _ = array_from_sitk(image)
    if array.dtype == np.float64:  # GDCM applies a fractional RescaleSlope in float64; float32 holds it
        array = array.astype(np.float32)
    extra = {"dicom_series": series, "dicom_modality": _tag(files[0], "0008|0060")}
    return array, affine, extra


def _warn_uneven_slices(reader, image, folder: Path, series: str) -> None:
    """Warn when slice positions along the normal are not evenly spaced (missing or duplicate slices)."""
    key = "0020|0032"
    count = len(reader.GetFileNames())
    if count < 3 or not all(reader.HasMetaDataKey(i, key) for i in range(count)):
        return
    normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    positions = np.array([[float(v) for v in reader.GetMetaData(i, key).split("\\")] for i in range(count)])
    gaps = np.diff(positions @ normal)
    if np.abs(gaps - gaps.mean()).max() > 0.01 * abs(gaps.mean()):
        logger.warning("%s: the slices of series %s are not evenly spaced (from %.4g to %.4g mm; missing "
                       "slices?); the volume uses their average spacing", folder, series, gaps.min(), gaps.max())


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as precise as that allows."""
    value = float(value) + 0.0  # no "-0"
    for digits in range(12, 3, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot write {value} as a DICOM decimal string")


def _new_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


def _pixel_plan(data: np.ndarray, folder: Path) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The array in a pixel type DICOM holds, and the pixel tags it needs."""
    kind, dtype = data.dtype.kind, data.dtype
    if kind == "b":
        return data.astype(np.uint8), []
    if dtype == np.int8:
        return data.astype(np.int16), []
    if kind in "iu" and dtype.itemsize <= 4:
        return data, []
    if kind in "iu":
        target = np.int32 if kind == "i" else np.uint32
        info = np.iinfo(target)
        if data.size and (data.min() < info.min or data.max() > info.max):
            raise MedsegError(f"values exceed the 32-bit range DICOM can hold ({dtype})", path=folder,
                              hint="write NIfTI or NRRD instead")
        return data.astype(target), []
    if kind != "f":
        raise MedsegError(f"DICOM cannot hold {dtype} pixels", path=folder, hint="write NIfTI instead")
    if not np.isfinite(data).all():
        raise MedsegError("DICOM cannot store NaN/inf voxels", path=folder,
                          hint="replace them first (e.g. numpy.nan_to_num) or write NIfTI/NRRD")
    lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    intercept_text = _ds((lo + hi) / 2)
    intercept = float(intercept_text)
    half_range = max(hi - intercept, intercept - lo)
    slope_text = _ds(half_range / _INT_RANGE * (1 + 1e-9)) if half_range > 0 else "1"
    tags = [("0028|1052", intercept_text), ("0028|1053", slope_text), ("0028|0100", "32"),
            ("0028|0101", "32"), ("0028|0102", "31"), ("0028|0103", "1")]
    return data.astype(np.float64 if dtype.itemsize > 4 else np.float32), tags


def write_dicom_series(
    array: np.ndarray,
    affine: np.ndarray,
    folder: Path,
    *,
    modality: str = "OT",
    description: str = "written by medseg",
    series_uid: str | None = None,
) -> str:
    """Write a channel-first ``(1, x, y[, z])`` array as one DICOM file per slice into ``folder``.

    The folder must exist and be empty (callers stage it; see :func:`medseg.io.write_image`).
    Returns the new SeriesInstanceUID.
    """
    import SimpleITK as sitk

    if array.shape[0] != 1:
        raise MedsegError(f"DICOM holds one channel per series, this image has {array.shape[0]}",
                          path=folder, hint="pick one with --frame N, or write NIfTI/NRRD/MHA")
    volume = array[0] if array.ndim == 4 else array[0][..., None]
    if has_shear(affine):
        raise MedsegError("the affine has shear, which DICOM cannot store", path=folder,
                          hint="write NIfTI instead, or resample to an orthogonal grid")
    volume, pixel_tags = _pixel_plan(volume, folder)
    origin, spacing, direction = itk_from_affine(affine, dim=3)
    d = np.asarray(direction).reshape(3, 3)
    if np.linalg.det(d) < 0:
        logger.info("%s: left-handed axes; DICOM readers will return the slices in reverse order "
                    "(same image in world space)", folder)
    series_uid = series_uid or _new_uid()
    now = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    common = [
        ("0008|0008", "DERIVED\\SECONDARY"), ("0008|0060", modality or "OT"),
        ("0008|0020", now[0]), ("0008|0030", now[1]), ("0008|0021", now[0]), ("0008|0031", now[1]),
        ("0008|103e", description[:64]), ("0010|0010", ""), ("0010|0020", ""),
        ("0020|000d", _new_uid()), ("0020|000e", series_uid), ("0020|0052", _new_uid()),
        ("0020|0011", "1"),
        ("0020|0037", "\\".join(_ds(v) for v in (*d[:, 0], *d[:, 1]))),
        ("0028|0030", f"{_ds(spacing[1])}\\{_ds(spacing[0])}"),  # row spacing (y), column spacing (x)
        ("0018|0050", _ds(spacing[2])), ("0018|0088", _ds(spacing[2])),
        *pixel_tags,
    ]
    normal = d[:, 2]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    digits = max(4, len(str(volume.shape[2])))
    for k in range(volume.shape[2]):
        position = np.asarray(origin) + k * spacing[2] * normal
        image = sitk.GetImageFromArray(np.ascontiguousarray(volume[:, :, k].T))
        image.SetSpacing(spacing[:2])  # GDCM writes PixelSpacing from the image, not from the tag
        for key, value in (*common, ("0008|0018", f"{series_uid}.{k + 1}"), ("0020|0013", str(k + 1)),
                           ("0020|0032", "\\".join(_ds(v) for v in position)),
                           ("0020|1041", _ds(float(position @ np.cross(d[:, 0], d[:, 1]))))):
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{k + 1:0{digits}d}.dcm"))
        writer.Execute(image)
    return series_uid
