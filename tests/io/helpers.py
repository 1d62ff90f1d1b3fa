"""Synthetic volumes, affines, destinations and bad input files for the I/O and CLI tests."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.io import write_image
from tests.conftest import random_oblique_affine

FORMATS_3D = ("nii", "nii.gz", "nrrd", "nhdr", "mha", "mhd", "dicom")
FORMATS_2D = ("nii", "nii.gz", "nrrd", "nhdr", "mha", "mhd", "png", "tif")
PIXEL_ONLY = ("png", "tif")  # store pixels and spacing, no origin or direction
DTYPES = ("uint8", "uint16", "int32", "float32")


def destination(folder: Path, name: str, fmt: str) -> Path:
    """``folder/name.fmt``, or the folder ``folder/name_dicom`` for a DICOM series."""
    return folder / (f"{name}_dicom" if fmt == "dicom" else f"{name}.{fmt}")


def volume(rng: np.random.Generator, dtype: str, shape=(6, 5, 4)) -> np.ndarray:
    """A channel-first array spanning the dtype's range (extremes included) so any narrowing shows."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = (rng.normal(size=shape) * 1000).astype(dt)
        data.flat[:3] = (0.0, 1e-3, -2.5e4)
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)
        data.flat[:2] = (info.min, info.max)
    return data[None]


def affine_of_kind(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Voxel-to-world affines a scanner or a pipeline produces (all anisotropic)."""
    spacing = np.array([0.7, 1.3, 2.5])
    if kind == "oblique":
        return random_oblique_affine(rng, spacing=tuple(spacing))
    signs = {"ras": (1, 1, 1), "lps": (-1, -1, 1), "las": (-1, 1, 1)}[kind]  # las: left-handed (radiological)
    affine = np.diag([*(spacing * signs), 1.0])
    affine[:3, 3] = rng.uniform(-150, 150, 3)
    return affine


def affine_2d(kind: str) -> np.ndarray:
    """``pixel``: what a PNG/TIFF can hold (spacing only); ``oblique``: in-plane rotation plus an origin."""
    if kind == "pixel":
        return np.diag([-0.7, -1.3, 1.0, 1.0])
    angle = 0.4
    affine = np.eye(4)
    affine[:2, :2] = [[np.cos(angle) * 0.7, -np.sin(angle) * 1.3], [np.sin(angle) * 0.7, np.cos(angle) * 1.3]]
    affine[:2, 3] = (12.5, -40.0)
    return affine


def dicom_tolerance(array: np.ndarray) -> float:
    """Float pixels go through DICOM as 32-bit integers plus a rescale slope: one step of range / 2**32."""
    finite = array[np.isfinite(array)]
    return 2.0 * float(finite.max() - finite.min()) / 2**32 + 1e-12


def write_series(folder: Path, rng: np.random.Generator, shape=(6, 5, 4)) -> np.ndarray:
    """A small int16 DICOM series with an oblique affine; returns the array written."""
    data = rng.integers(-1000, 3000, size=(1, *shape)).astype(np.int16)
    write_image(data, folder, affine=random_oblique_affine(rng))
    return data


def make_bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, words the one-line error must contain) for every bad input a user can give."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    data = rng.normal(size=(8, 8, 8)).astype(np.float32)
    good = folder / "good.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), good)
    raw = good.read_bytes()
    (folder / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "plain.nii")
    raw = (folder / "plain.nii").read_bytes()
    (folder / "truncated.nii").write_bytes(raw[: len(raw) - 700])
    (folder / "notes.nii").write_text("patient list, not an image\n" * 20)
    (folder / "notes.nii.gz").write_text("patient list, not an image\n" * 20)
    (folder / "notes.nrrd").write_text("patient list, not an image\n" * 20)
    (folder / "scan.xyz").write_bytes(b"\0" * 64)
    write_image(rng.integers(0, 255, size=(1, 9, 7)).astype(np.uint8), folder / "photo.png")
    shutil.copy(folder / "photo.png", folder / "photo_renamed.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.int16), np.eye(4)), folder / "four_d.nii.gz")
    singular = nib.Nifti1Image(data, np.eye(4))
    singular.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=1)
    singular.set_qform(None, code=0)
    nib.save(singular, folder / "singular.nii.gz")
    (folder / "empty").mkdir(exist_ok=True)
    (folder / "not_dicom").mkdir(exist_ok=True)
    shutil.copy(good, folder / "not_dicom" / "good.nii.gz")
    several = folder / "two_series"
    several.mkdir(exist_ok=True)
    for index in (1, 2):
        series = folder / f"series{index}"
        write_series(series, rng)
        for file in sorted(os.listdir(series)):
            shutil.copy(series / file, several / f"s{index}_{file}")
    return {
        "missing": (folder / "missing.nii.gz", "not found"),
        "unknown extension": (folder / "scan.xyz", "unknown image extension"),
        "truncated nii.gz": (folder / "truncated.nii.gz", "truncated"),
        "truncated nii": (folder / "truncated.nii", "truncated"),
        "text renamed nii": (folder / "notes.nii", "not a NIfTI file"),
        "text renamed nii.gz": (folder / "notes.nii.gz", "not a NIfTI file"),
        "png renamed nii": (folder / "photo_renamed.nii", "not a NIfTI file"),
        "text renamed nrrd": (folder / "notes.nrrd", "not an image"),
        "4D volume": (folder / "four_d.nii.gz", "--frame"),
        "singular affine": (folder / "singular.nii.gz", "singular"),
        "empty folder": (folder / "empty", "empty folder"),
        "folder without DICOM": (folder / "not_dicom", "no DICOM series"),
        "several series": (folder / "two_series", "--series"),
    }


def nan_volume(folder: Path, count: int = 5) -> Path:
    """A float NIfTI with ``count`` NaN/inf voxels."""
    data = np.random.default_rng(3).normal(size=(8, 8, 8)).astype(np.float32)
    data.flat[: count - 1] = np.nan
    data.flat[-1] = np.inf
    path = folder / "with_nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path
