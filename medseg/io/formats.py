"""File-format detection by extension, and what each format can hold.

Formats (the value :func:`detect_format` returns):

* ``nifti``: ``.nii``, ``.nii.gz`` (nibabel).
* ``itk``: ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd`` (SimpleITK); ``.dcm`` (one DICOM file) for reading only.
* ``image2d``: ``.png``, ``.tif``, ``.tiff``; ``.jpg``, ``.jpeg``, ``.bmp`` for reading only (lossy or RGB-only).
* ``dicom``: a folder holding a DICOM series. For writing, a path ending in ``/``, an existing folder or a
  name without any extension means a DICOM series folder.
"""
from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError

NIFTI = (".nii", ".nii.gz")
ITK_VOLUME = (".nrrd", ".nhdr", ".mha", ".mhd")
DETACHED_HEADER = (".nhdr", ".mhd")  # header + separate data file
DICOM_FILE = (".dcm",)
IMAGE_2D = (".png", ".tif", ".tiff")
READ_ONLY_2D = (".jpg", ".jpeg", ".bmp")
READ_ONLY = DICOM_FILE + READ_ONLY_2D
ALL = NIFTI + ITK_VOLUME + DICOM_FILE + IMAGE_2D + READ_ONLY_2D
WRITABLE = NIFTI + ITK_VOLUME + IMAGE_2D

# on-disk pixel types each 2D format can hold (others raise a MedsegError naming a format that can)
IMAGE_2D_DTYPES = {
    ".png": ("uint8", "uint16"),
    ".tif": ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"),
    ".tiff": ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"),
}


def split_ext(path: str | PathLike) -> tuple[str, str]:
    """Split a file name into (stem, extension), treating ``.nii.gz`` as one extension."""
    name = Path(path).name
    lower = name.lower()
    for ext in sorted(ALL, key=len, reverse=True):
        if lower.endswith(ext):
            return name[: -len(ext)], lower[-len(ext):]
    suffix = Path(name).suffix
    return name[: len(name) - len(suffix)], suffix.lower()


def _names_folder(path: str | PathLike) -> bool:
    text = os.fspath(path)
    return text.endswith(("/", os.sep)) or Path(text).is_dir() or Path(text).suffix == ""


def detect_format(path: str | PathLike, *, for_writing: bool = False) -> str:
    """Return ``nifti``, ``itk``, ``image2d`` or ``dicom`` for a path, or raise :class:`MedsegError`."""
    p = Path(path)
    if for_writing:
        if _names_folder(path):
            return "dicom"
    elif p.is_dir():
        return "dicom"
    _, ext = split_ext(p)
    if for_writing and ext in READ_ONLY:
        hint = ("give a folder to write a DICOM series, or --dicom-source SERIES_FOLDER (convert) or --output-format "
                "dicom-seg (predict) for a DICOM-SEG" if ext in DICOM_FILE
                else "JPEG is lossy and BMP holds RGB only: write .png or .tif")
        raise MedsegError(f"medseg does not write {ext} files", path=p, hint=hint)
    if ext in NIFTI:
        return "nifti"
    if ext in ITK_VOLUME or ext in DICOM_FILE:
        return "itk"
    if ext in IMAGE_2D or ext in READ_ONLY_2D:
        return "image2d"
    choices = ", ".join(WRITABLE if for_writing else ALL)
    raise MedsegError(
        f"unknown image extension {ext or '(none)'!r}",
        path=p,
        hint=f"use one of {choices} or a DICOM series folder",
    )


def case_name(path: str | PathLike) -> str:
    """The case identifier of a file (its name without the image extension)."""
    p = Path(path)
    return p.name if p.is_dir() else split_ext(p)[0]
