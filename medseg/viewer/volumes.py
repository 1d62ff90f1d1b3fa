"""Volumes for the viewer page: read, shrink to a voxel budget, compare with a reference, encode as NIfTI.

The page carries each volume as base64 of a gzipped NIfTI (NiiVue reads it as it would a file), so the
geometry the browser sees is the file's own affine: slices are shown in physical space.
"""
from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.reports.labels import embedded_label_names

logger = get_logger(__name__)

SCAN_BUDGET = 16_000_000   # voxels; a 512x512x300 CT (0.7x0.7x1 mm) is shown at 256x256x150 (9.8 M)
LABEL_BUDGET = 16_000_000
AGREE, EXTRA, MISSED, WRONG = 1, 2, 3, 4  # values of the comparison volume
COMPARISON_NAMES = {AGREE: "in both", EXTRA: "prediction only (false positive)",
                    MISSED: "reference only (false negative)", WRONG: "both, different label"}


@dataclass
class Volume:
    """One array (x, y, z) on its RAS affine, with what the page needs to show it."""

    array: np.ndarray
    affine: np.ndarray
    name: str
    names: dict[int, str] = field(default_factory=dict)  # label maps only
    step: tuple[int, ...] = (1, 1, 1)                     # voxels of the file per voxel shown
    label: bool = False

    def nifti_base64(self) -> str:
        """The volume as base64 text of a gzipped NIfTI-1 file (what NiiVue's ``loadFromBase64`` takes)."""
        import nibabel as nib

        image = nib.Nifti1Image(self.array, self.affine)
        image.header.set_qform(self.affine, code=1)
        image.header.set_sform(self.affine, code=1)
        if self.label:
            image.header.set_intent("label")  # NiiVue then looks colours up per value (no interpolation)
        return base64.b64encode(gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)).decode("ascii")


def read_volume(path: str | PathLike, *, label: bool) -> Volume:
    """Read a scan (``label=False``) or a label map as a 3D array on its RAS affine (2D images get one slice)."""
    from medseg.io.readers import read_array  # numpy: the viewer needs no torch

    p = Path(path)
    data, affine, _ = read_array(p)
    if data.shape[0] != 1:
        if label:
            raise MedsegError(f"has {data.shape[0]} channels; a label map has one", path=p)
        logger.warning("%s: %d channels, showing the first", p, data.shape[0])
    array = data[0]
    if array.ndim == 2:
        array = array[:, :, None]
    if label:
        array = _label_dtype(array, p)
        return Volume(array, affine, p.name, names=embedded_label_names(p), label=True)
    return Volume(_scan_dtype(array), affine, p.name)


def _scan_dtype(array: np.ndarray) -> np.ndarray:
    """int16 when the values fit (CT in HU, most MR), else float32: half the bytes of the reader's float/int32."""
    if array.dtype.kind in "iub" or np.array_equal(array, np.round(array)):
        lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if -32768 <= lo and hi <= 32767:
            return array.astype(np.int16)
    return np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _label_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise MedsegError("holds non-integer values; it is not a label map", path=path,
                          hint="give the label map (e.g. CASE_seg.nii.gz) after the scan")
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise MedsegError("holds values outside 0..65535; it is not a label map", path=path)
    return array.astype(np.uint8 if array.size == 0 or array.max() <= 255 else np.uint16)


def shrink(volume: Volume, budget: int, *, label: bool) -> Volume:
    """At most ``budget`` voxels: halve the finest axis (in mm) until it fits; scans by block mean, label maps
    by taking every n-th voxel (labels must not be averaged). The affine keeps each shown voxel where its
    block's centre is."""
    shape = volume.array.shape
    steps = shrink_steps(shape, np.linalg.norm(volume.affine[:3, :3], axis=0), budget)
    if steps == [1, 1, 1]:
        return volume
    array = _strided(volume.array, steps) if label else _block_mean(volume.array, steps)
    affine = volume.affine.copy()
    offset = [(s - 1) / 2 if not label else 0.0 for s in steps]
    affine[:3, 3] = volume.affine[:3, :3] @ np.asarray(offset) + volume.affine[:3, 3]
    affine[:3, :3] = volume.affine[:3, :3] * np.asarray(steps, float)
    logger.info("%s: shown at 1/%s of its voxels per axis (%s -> %s)", volume.name, "x".join(map(str, steps)),
                shape, array.shape)
    return Volume(array, affine, volume.name, volume.names, tuple(steps), volume.label)


def shrink_steps(shape: tuple[int, ...], spacing, budget: int) -> list[int]:
    """Per-axis steps (powers of 2) that bring ``shape`` within ``budget`` voxels, coarsening the finest axes
    (in mm) first."""
    steps = [1, 1, 1]
    while int(np.prod([-(-n // s) for n, s in zip(shape, steps)])) > budget:
        open_axes = [a for a in range(3) if shape[a] // steps[a] > 1]
        finest = min(spacing[a] * steps[a] for a in open_axes)
        for axis in open_axes:  # axes as fine as the finest (e.g. x and y of an axial CT) are halved together
            if spacing[axis] * steps[axis] <= finest * 1.1:
                steps[axis] *= 2
    return steps


def _strided(array: np.ndarray, steps: list[int]) -> np.ndarray:
    return np.ascontiguousarray(array[:: steps[0], :: steps[1], :: steps[2]])


def _block_mean(array: np.ndarray, steps: list[int]) -> np.ndarray:
    shape = [n // s * s for n, s in zip(array.shape, steps)]
    cropped = array[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    blocks = cropped.reshape(shape[0] // steps[0], steps[0], shape[1] // steps[1], steps[1],
                             shape[2] // steps[2], steps[2])
    mean = blocks.mean(axis=(1, 3, 5))
    return np.round(mean).astype(array.dtype) if array.dtype.kind in "iu" else mean.astype(array.dtype)


def same_grid(a: Volume, b: Volume) -> bool:
    """Same shape and affine (to 1e-3 mm): voxels can be compared one to one."""
    return a.array.shape == b.array.shape and np.allclose(a.affine, b.affine, atol=1e-3)


def comparison(pred: Volume, ref: Volume) -> Volume:
    """A label map of agreement: 1 in both, 2 prediction only (FP), 3 reference only (FN), 4 another label."""
    if not same_grid(pred, ref):
        raise MedsegError(f"{pred.name} and the reference {ref.name} are on different voxel grids "
                          f"({pred.array.shape} vs {ref.array.shape})", path=ref.name,
                          hint="resample the prediction onto the reference grid first")
    p, r = pred.array, ref.array
    out = np.zeros(p.shape, np.uint8)
    out[(p > 0) & (p == r)] = AGREE
    out[(p > 0) & (r == 0)] = EXTRA
    out[(r > 0) & (p == 0)] = MISSED
    out[(p > 0) & (r > 0) & (p != r)] = WRONG
    return Volume(out, pred.affine, f"{pred.name} vs {ref.name}", dict(COMPARISON_NAMES), pred.step, label=True)


def ct_like(array: np.ndarray) -> bool:
    """A scan in Hounsfield units: air near -1000 (the 1st percentile below -500)."""
    sample = array.ravel()[:: max(1, array.size // 200_000)]
    return bool(sample.size) and float(np.percentile(sample, 1)) < -500


def robust_range(array: np.ndarray) -> tuple[float, float]:
    """0.5th and 99.5th percentiles of the non-zero voxels: the MR 'auto' window."""
    sample = array.ravel()[:: max(1, array.size // 500_000)]
    sample = sample[sample != 0] if np.any(sample != 0) else sample
    if not sample.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    return lo, hi if hi > lo else lo + 1.0
