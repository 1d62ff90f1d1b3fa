"""Geometry conversions between nibabel (RAS affine) and SimpleITK (LPS origin/spacing/direction).

medseg's canonical frame is nibabel's: array axes (i, j[, k]) and a 4x4 voxel-to-world affine in RAS+ mm,
also for 2D images (the third column is then the unused slice axis). ITK images store LPS world
coordinates, so x and y flip sign on the way in and out.
"""
from __future__ import annotations

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def affine_from_itk(origin, spacing, direction) -> np.ndarray:
    """RAS 4x4 affine from ITK origin, spacing and (row-major, flattened) direction, padded to 3D."""
    dim = len(origin)
    direction3 = np.eye(3)
    direction3[:dim, :dim] = np.asarray(direction, dtype=np.float64).reshape(dim, dim)
    spacing3 = np.ones(3)
    spacing3[:dim] = spacing
    origin3 = np.zeros(3)
    origin3[:dim] = origin
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction3 @ np.diag(spacing3)
    affine[:3, 3] = LPS_TO_RAS @ origin3
    return affine


def itk_from_affine(affine: np.ndarray, dim: int = 3) -> tuple[tuple, tuple, tuple]:
    """(origin, spacing, direction) in ITK's LPS convention from a RAS 4x4 affine (``dim`` 2 or 3)."""
    affine = as_affine4(affine)
    lps = LPS_TO_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / np.where(spacing > 0, spacing, 1.0)
    origin = LPS_TO_RAS @ affine[:3, 3]
    if dim == 2:
        return tuple(origin[:2]), tuple(spacing[:2]), tuple(direction[:2, :2].ravel())
    return tuple(origin), tuple(spacing), tuple(direction.ravel())


def as_affine4(affine) -> np.ndarray:
    """A float64 4x4 affine; a 3x3 (MONAI's 2D convention) is embedded with an identity slice axis."""
    a = np.asarray(affine.detach().cpu().numpy() if hasattr(affine, "detach") else affine, dtype=np.float64)
    if a.shape == (4, 4):
        return a
    if a.shape == (3, 3):
        out = np.eye(4)
        out[:2, :2], out[:2, 3] = a[:2, :2], a[:2, 2]
        return out
    raise ValueError(f"an affine must be 4x4 (or 3x3 for 2D), got shape {a.shape}")


def fits_itk_2d(affine: np.ndarray) -> bool:
    """True when a 2D ITK image (2x2 direction, 2D origin) reads back as exactly this affine."""
    affine = as_affine4(affine)
    origin, spacing, direction = itk_from_affine(affine, dim=2)
    return bool(np.allclose(affine_from_itk(origin, spacing, direction), affine, rtol=1e-9, atol=1e-6))


def complete_slice_axis(affine: np.ndarray) -> np.ndarray:
    """For a 2D image: keep the third (unused) column if it is orthogonal to the first two, else replace it
    by their unit normal, so the image can be stored as a one-slice 3D volume."""
    affine = as_affine4(affine).copy()
    if is_singular(affine, 3) or has_shear(affine, 3):
        normal = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    return affine


def is_singular(affine: np.ndarray, ndim: int = 3) -> bool:
    """True when the affine is non-finite or its first ``ndim`` columns do not span ``ndim`` dimensions."""
    affine = as_affine4(affine)
    if not np.isfinite(affine).all():
        return True
    values = np.linalg.svd(affine[:3, :ndim], compute_uv=False)
    return bool(values.min() <= 1e-8 * max(values.max(), 1e-12))


def has_shear(affine: np.ndarray, ndim: int = 3) -> bool:
    """True when the array axes are not orthogonal in world space (NRRD/MetaImage/DICOM cannot store it)."""
    columns = as_affine4(affine)[:3, :ndim]
    norms = np.linalg.norm(columns, axis=0)
    unit = columns / np.where(norms > 0, norms, 1.0)
    return not np.allclose(unit.T @ unit, np.eye(ndim), atol=1e-4)


def spacing_from_affine(affine: np.ndarray, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm along each of the first ``ndim`` array axes (column norms of the affine)."""
    return tuple(float(s) for s in np.linalg.norm(as_affine4(affine)[:3, :ndim], axis=0))


def orientation_code(affine: np.ndarray) -> str:
    """Three-letter orientation code of the array axes, e.g. ``RAS`` or ``LPS`` (nibabel's convention)."""
    import nibabel as nib

    return "".join(nib.aff2axcodes(as_affine4(affine)))
