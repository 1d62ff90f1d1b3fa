"""Volumes for display: a 3D array (plus labels) turned to RAS axis order, with its spacing in mm.

Input is a MetaTensor from :func:`medseg.io.read_image` / :func:`medseg.predict` (geometry from its
affine), a path, or an array with ``affine=`` or ``spacing=``. Arrays are reoriented to the closest RAS
axis order (flips and axis swaps, no resampling), so axial slices show x left-right and y
posterior-anterior whatever the file's orientation; an oblique scan is shown in its nearest RAS frame.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from medseg.core.errors import MedsegError

VIEWS = ("axial", "coronal", "sagittal")
#: the array axis each view slices through (after reorientation to RAS)
VIEW_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


@dataclass
class Volume:
    """A display-ready volume: ``image`` and ``labels`` indexed [x, y, z] in RAS order, ``spacing`` in mm."""

    image: np.ndarray
    labels: np.ndarray | None
    spacing: tuple[float, float, float]
    ornt: np.ndarray          # nibabel orientation: input axis -> (RAS axis, flip)
    input_shape: tuple[int, int, int]
    planar: bool = False      # a 2D picture: one "axial" plane showing the file as image viewers do

    def display_index(self, index: Sequence[int]) -> tuple[int, int, int]:
        """A voxel (i, j, k) of the input array -> the same voxel in the reoriented arrays."""
        out = [0, 0, 0]
        for axis, (target, flip) in enumerate(self.ornt):
            i = int(index[axis])
            if not 0 <= i < self.input_shape[axis]:
                raise MedsegError(f"index {tuple(index)} is outside the volume of shape {self.input_shape}")
            out[int(target)] = self.input_shape[axis] - 1 - i if flip < 0 else i
        return tuple(out)

    def window(self, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
        """Grey-level window from percentiles of the whole volume (the same for every slice)."""
        finite = self.image[np.isfinite(self.image)]
        if finite.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(finite, [low, high])
        return float(lo), float(hi if hi > lo else lo + 1)


def _array(value: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(array, affine or None) from a path, MetaTensor, tensor or array."""
    if isinstance(value, (str, PathLike)):
        from medseg.io import read_image

        value = read_image(value)
    affine = getattr(value, "affine", None)
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.as_tensor() if hasattr(value, "as_tensor") else value
        value = value.numpy()
    if affine is not None and hasattr(affine, "detach"):
        affine = affine.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise MedsegError(f"the {what} is not an array ({type(value).__name__})") from exc
    return array, None if affine is None else np.asarray(affine, np.float64)


def _is_picture(value: Any) -> bool:
    """True for 2D images: a medseg 2D MetaTensor ``(C, x, y)`` (``meta["spatial_shape"]`` has 2 values), a
    2D/colour image file (read here) or a plain 2D array."""
    meta = getattr(value, "meta", None)
    if isinstance(meta, dict) and "spatial_shape" in meta:
        return len(meta["spatial_shape"]) == 2
    return np.ndim(value) == 2


def _picture(value: Any, what: str) -> tuple[np.ndarray, tuple[float, float]]:
    """A 2D image as [row, col] (the way image viewers show the file) and its (column, row) spacing."""
    from medseg.transforms.landmarks import to_grey

    if hasattr(value, "meta"):                     # medseg (C, x, y): x = column, y = row
        array = np.asarray(value.detach().cpu().numpy())
        spacing = tuple(float(v) for v in value.meta.get("spacing", (1.0, 1.0)))
        array = np.moveaxis(array, 0, -1).swapaxes(0, 1)
        array = array[..., 0] if array.shape[-1] == 1 else to_grey(array)
    else:
        array, spacing = np.asarray(value), (1.0, 1.0)
    if array.ndim != 2:
        raise MedsegError(f"the {what} has shape {array.shape}; a 2D image needs (rows, columns)")
    return array, spacing[:2]


def _as_picture_volume(image: Any, labels: Any, spacing: Sequence[float] | None) -> Volume:
    """A 2D image (and labels) as a one-slice Volume whose axial plane shows it as the file does (row 0 on top)."""
    img, voxel = _picture(image, "image")
    if spacing is not None:
        if len(spacing) != 2 or any(float(s) <= 0 for s in spacing):
            raise MedsegError(f"spacing {tuple(spacing)} of a 2D image must be two positive numbers "
                              "(mm per column, per row)")
        voxel = tuple(float(s) for s in spacing)
    lab = None
    if labels is not None:
        if not _is_picture(labels):
            raise MedsegError("the labels are not 2D but the image is", hint="give the 2D label map of this image")
        lab, _ = _picture(labels, "labels")
        if lab.shape != img.shape:
            raise MedsegError(f"labels of shape {lab.shape} do not match the image of shape {img.shape}",
                              hint="give the label map on the image's grid (medseg.predict returns one)")
        lab = np.round(lab).astype(np.int32)

    def stand(array: np.ndarray) -> np.ndarray:  # plane(axial) = array[:, :, 0].T, drawn bottom row first
        return np.ascontiguousarray(array[::-1].T[..., None])

    return Volume(image=stand(img.astype(np.float32)), labels=None if lab is None else stand(lab),
                  spacing=(voxel[0], voxel[1], 1.0), ornt=np.array([[0, 1], [1, 1], [2, 1]], float),
                  input_shape=(img.shape[1], img.shape[0], 1), planar=True)


def _spatial3d(array: np.ndarray, what: str) -> np.ndarray:
    """(x, y, z) from (x, y, z) or (1, x, y, z); anything else is a clear error."""
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 4:
        raise MedsegError(f"the {what} has shape {array.shape}: 4D (several channels or frames) cannot be shown "
                          "as one volume", hint=f"pick one channel, e.g. {what}[0], or read the file with frame=")
    if array.ndim != 3:
        raise MedsegError(f"the {what} has shape {array.shape}; a 3D volume (x, y, z) or (1, x, y, z) is needed",
                          hint="for a 2D image use a 2D viewer (e.g. landmark_overlay) or add a slice axis")
    return array


def as_volume(image: Any, labels: Any = None, *, spacing: Sequence[float] | None = None,
              affine: Any = None) -> Volume:
    """Check and reorient ``image`` (and ``labels`` on the same grid) for display.

    Geometry comes from ``affine=``, else the image's (or labels') affine, else ``spacing=`` with the
    array axes taken as RAS (default 1 mm). ``spacing=`` overrides the affine's voxel size. A 2D image
    (2D file or MetaTensor, or a 2D array) becomes a one-slice ``planar`` volume shown as image viewers
    show the file (row 0 on top), in its pixel spacing.
    """
    import nibabel as nib

    if isinstance(image, (str, PathLike)):
        from medseg.io import read_image

        image = read_image(image)
    if isinstance(labels, (str, PathLike)):
        from medseg.io import read_image

        labels = read_image(labels)
    if _is_picture(image):
        return _as_picture_volume(image, labels, spacing)
    img, img_affine = _array(image, "image")
    img = _spatial3d(img, "image").astype(np.float32, copy=False)
    lab = None
    lab_affine = None
    if labels is not None:
        lab, lab_affine = _array(labels, "labels")
        lab = _spatial3d(lab, "labels")
        if lab.shape != img.shape:
            raise MedsegError(f"labels of shape {lab.shape} do not match the image of shape {img.shape}",
                              hint="give the label map on the image's grid (medseg.predict returns one)")
        if not np.issubdtype(lab.dtype, np.integer):
            if not np.all(np.isclose(lab, np.round(lab))):
                raise MedsegError("the labels hold non-integer values", hint="give a label map, not probabilities")
        lab = np.round(lab).astype(np.int32) if not np.issubdtype(lab.dtype, np.integer) else lab.astype(np.int32)
    if affine is not None:
        from medseg.io.geometry import as_affine4

        aff = as_affine4(affine)
    else:
        aff = img_affine if img_affine is not None else lab_affine
    if aff is not None and np.asarray(aff).shape != (4, 4):
        from medseg.io.geometry import as_affine4

        aff = as_affine4(aff)
    if aff is None:
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
        voxel = np.ones(3)
    else:
        ornt = nib.orientations.io_orientation(aff)
        voxel = np.linalg.norm(aff[:3, :3], axis=0)
    if spacing is not None:
        if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
            raise MedsegError(f"spacing {tuple(spacing)} must be three positive numbers (mm per array axis)")
        voxel = np.asarray(spacing, np.float64)
    shown = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(ornt):
        shown[int(target)] = float(voxel[axis])
    def reorient(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(nib.orientations.apply_orientation(array, ornt))

    return Volume(image=reorient(img), labels=None if lab is None else reorient(lab),
                  spacing=tuple(shown), ornt=ornt, input_shape=tuple(int(s) for s in img.shape))


def plane(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """The 2D slice of a reoriented array as shown: rows = vertical axis (bottom first), columns = horizontal."""
    axis = VIEW_AXIS[check_view(view)]
    return np.take(volume, int(index), axis=axis).T


def extent(shape: Sequence[int], spacing: Sequence[float], view: str) -> tuple[float, float, float, float]:
    """imshow extent (left, right, bottom, top) in mm of a view, voxel edges at 0 and n x spacing."""
    h_axis, v_axis = [a for a in range(3) if a != VIEW_AXIS[check_view(view)]]
    return 0.0, shape[h_axis] * spacing[h_axis], 0.0, shape[v_axis] * spacing[v_axis]


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise MedsegError(f"unknown view {view!r}", hint=f"use one of {', '.join(VIEWS)}")
    return view


def focus_index(volume: Volume) -> tuple[int, int, int]:
    """The displayed voxel to centre on: the centroid of the foreground labels, else the volume's centre."""
    if volume.labels is not None and np.any(volume.labels > 0):
        return tuple(int(round(float(c.mean()))) for c in np.nonzero(volume.labels > 0))
    return tuple(s // 2 for s in volume.image.shape)
