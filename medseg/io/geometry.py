"""Geometry conversions between nibabel (RAS affine) and SimpleITK (LPS origin/spacing/direction).

medseg's canonical frame is nibabel's: array axes (i, j, k) and a 4x4 voxel-to-world affine in RAS+ mm.
ITK images store LPS world coordinates, so x and y flip sign on the way in and out.
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
    """(origin, spacing, direction) in ITK's LPS convention from a RAS 4x4 affine."""
    affine = np.asarray(affine, dtype=np.float64)
    lps = LPS_TO_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    direction = lps / spacing
    origin = LPS_TO_RAS @ affine[:3, 3]
    if dim == 2:
        return tuple(origin[:2]), tuple(spacing[:2]), tuple(direction[:2, :2].ravel())
    return tuple(origin), tuple(spacing), tuple(direction.ravel())


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis (column norms of the affine's 3x3 part)."""
    return tuple(float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def orientation_code(affine: np.ndarray) -> str:
    """Three-letter orientation code of the array axes, e.g. ``RAS`` or ``LPS`` (nibabel's convention)."""
    import nibabel as nib

    return "".join(nib.aff2axcodes(np.asarray(affine)))
