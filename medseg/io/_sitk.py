"""SimpleITK image <-> numpy array in medseg's axis order (x, y[, z]) and RAS affine.

SimpleITK's numpy view is (z, y, x[, components]); medseg (like nibabel and MONAI) indexes (x, y, z).
"""
from __future__ import annotations

import numpy as np

from medseg.io.geometry import affine_from_itk, itk_from_affine


def array_from_sitk(image) -> tuple[np.ndarray, np.ndarray, bool]:
    """(array, affine, has_frames): array is (x, y[, z]) or (x, y[, z], F) for vector/4D images."""
    import SimpleITK as sitk

    dim = image.GetDimension()
    vector = image.GetNumberOfComponentsPerPixel() > 1
    order = tuple(range(dim - 1, -1, -1)) + ((dim,) if vector else ())
    # one copy, straight into C order, while ``image`` still owns the viewed buffer
    array = np.ascontiguousarray(np.transpose(sitk.GetArrayViewFromImage(image), order))
    if vector and dim == 4:
        raise ValueError("4D images with vector pixels are not supported")
    spatial = min(dim, 3)
    direction = np.asarray(image.GetDirection()).reshape(dim, dim)[:spatial, :spatial].ravel()
    affine = affine_from_itk(image.GetOrigin()[:spatial], image.GetSpacing()[:spatial], direction)
    return array, affine, vector or dim == 4


def sitk_from_array(array: np.ndarray, affine: np.ndarray, *, dim: int, geometry: bool = True):
    """A SimpleITK image from a channel-first ``(C, *spatial)`` array; C > 1 becomes vector pixels.

    ``dim`` is the ITK dimension to write (2 or 3; a 2D array written as 3D gets one slice). With
    ``geometry=False`` only the spacing is set (pixel-only formats such as PNG).
    """
    import SimpleITK as sitk

    data = array
    if data.ndim - 1 < dim:
        data = data[..., None]
    spatial = data.ndim - 1
    if data.shape[0] == 1:
        image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data[0])), isVector=False)
    else:
        moved = np.transpose(data, (*range(spatial, 0, -1), 0))  # (C, x, y[, z]) -> (z, y, x, C)
        image = sitk.GetImageFromArray(np.ascontiguousarray(moved), isVector=True)
    origin, spacing, direction = itk_from_affine(affine, dim=dim)
    image.SetSpacing(spacing)
    if geometry:
        image.SetOrigin(origin)
        image.SetDirection(direction)
    return image


def error_detail(exc: BaseException) -> str:
    """The informative line of a library error (ITK puts file/line noise first), for one-line messages."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception thrown", "/", "- "))] or lines or [""]
    text = useful[0].replace("sitk::ERROR: ", "").replace("ITK ERROR: ", "")
    return f"{type(exc).__name__}: {text[:160] if text else 'no detail'}"
