"""File-format detection by extension."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError

NIFTI = (".nii", ".nii.gz")
ITK_VOLUME = (".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_2D = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
ALL = NIFTI + ITK_VOLUME + IMAGE_2D


def split_ext(path: str | PathLike) -> tuple[str, str]:
    """Split a file name into (stem, extension), treating ``.nii.gz`` as one extension."""
    name = Path(path).name
    lower = name.lower()
    for ext in sorted(ALL, key=len, reverse=True):
        if lower.endswith(ext):
            return name[: -len(ext)], lower[-len(ext):]
    suffix = Path(name).suffix
    return name[: len(name) - len(suffix)], suffix.lower()


def detect_format(path: str | PathLike, *, for_writing: bool = False) -> str:
    """Return ``nifti``, ``itk``, ``image2d`` or ``dicom`` (a folder) for a path, or raise."""
    p = Path(path)
    if not for_writing and p.is_dir():
        return "dicom"
    _, ext = split_ext(p)
    if ext in NIFTI:
        return "nifti"
    if ext in ITK_VOLUME:
        return "itk"
    if ext in IMAGE_2D:
        return "image2d"
    raise MedsegError(
        f"unknown image extension {ext or '(none)'!r}",
        path=p,
        hint=f"use one of {', '.join(ALL)} or a DICOM series folder",
    )


def case_name(path: str | PathLike) -> str:
    """The case identifier of a file (its name without the image extension)."""
    p = Path(path)
    return p.name if p.is_dir() else split_ext(p)[0]
