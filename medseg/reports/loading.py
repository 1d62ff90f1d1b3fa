"""Read label maps for evaluation: refuse non-label data, check geometry, resample when asked."""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from medseg.core.errors import MedsegError

MAX_LABELS = 1000  # more distinct values than this is an image, not a label map
AFFINE_ATOL = 1e-3  # mm; headers stored in float32 differ by far less, a real mismatch by far more


@dataclass
class LabelMap:
    """A label map with its 4x4 RAS voxel-to-world affine and per-axis spacing (mm)."""

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = None

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, : self.array.ndim], axis=0))


def load_label_map(path: str | PathLike, *, threshold: float | None = None) -> LabelMap:
    """Read a label map; float maps must hold whole numbers unless ``threshold`` binarises them (>= T -> 1)."""
    from medseg.io.readers import read_array  # numpy: evaluating label maps needs no MetaTensor

    p = Path(path)
    try:
        array, affine, _ = read_array(p)
    except MedsegError as exc:  # the reader's "--frame N" hint belongs to predict/convert, not evaluate
        if exc.hint and "--frame" in exc.hint:
            raise MedsegError(exc.message, path=exc.path,
                              hint=f"evaluate reads 2D/3D label maps; extract one frame first: medseg convert "
                              f"{p} frame.nii.gz --frame N") from None
        raise
    if array.shape[0] != 1:
        raise MedsegError(f"has {array.shape[0]} channels; a label map has one", path=p,
                          hint="save the segmentation as a single-channel label image")
    return LabelMap(to_label_array(array[0], p, threshold), affine, p)


def to_label_array(array: np.ndarray, path: str | PathLike | None, threshold: float | None) -> np.ndarray:
    """Integer labels from ``array``, or a :class:`MedsegError` saying why it is not a label map."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            raise MedsegError(f"has {int(array.size - finite.sum())} NaN/inf voxels; a label map has none", path=path)
        rounded = np.round(array)
        if not np.array_equal(array, rounded):
            if threshold is not None:
                return (array >= threshold).astype(np.uint8)
            values = np.unique(array)
            example = float(values[np.flatnonzero(values != np.round(values))[0]])
            raise MedsegError(
                f"holds {len(values)} distinct non-integer values (e.g. {example:.4g}): probabilities or an "
                "image, not a label map",
                path=path,
                hint="pass --threshold T (threshold=T) to make voxels >= T label 1, or give the label file",
            )
        array = rounded.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise MedsegError(f"has dtype {array.dtype}; a label map holds integers", path=path)
    if array.size and array.min() < 0:
        raise MedsegError(f"has negative values (min {array.min()}): an image, not a label map", path=path,
                          hint="give the segmentation file, whose values are 0 (background) and positive labels")
    top = int(array.max()) if array.size else 0
    n_values = len(np.unique(array)) if top >= 65536 else int(np.count_nonzero(np.bincount(array.ravel())))
    if n_values > MAX_LABELS:
        raise MedsegError(f"has {n_values} distinct values: an image, not a label map", path=path,
                          hint="give the segmentation file")
    return array.astype(_smallest_dtype(top), copy=False)


def _smallest_dtype(top: int) -> type:
    return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64


def check_geometry(pred: LabelMap, ref: LabelMap, *, resample: bool) -> tuple[LabelMap, bool]:
    """The prediction on the reference grid: itself when shape and affine agree, else resampled or an error.

    Returns the (possibly resampled) prediction and whether it was resampled.
    """
    same_shape = pred.array.shape == ref.array.shape
    if same_shape and np.allclose(pred.affine, ref.affine, rtol=0, atol=AFFINE_ATOL):
        return pred, False
    if not resample:
        raise MedsegError(
            f"prediction {pred.path} ({_describe(pred)}) and reference {ref.path} ({_describe(ref)}) are on "
            "different voxel grids",
            hint="fix the prediction's header, or pass --resample-to-reference (resample_to_reference=True) "
            "to resample it onto the reference grid (nearest neighbour)",
        )
    return LabelMap(resample_nearest(pred, ref), ref.affine, pred.path), True


def resample_nearest(pred: LabelMap, ref: LabelMap) -> np.ndarray:
    """The prediction's labels at the reference voxel centres (world coordinates, nearest neighbour, 0 outside)."""
    from scipy import ndimage

    if pred.array.ndim != ref.array.ndim:
        raise MedsegError(f"prediction {pred.path} is {pred.array.ndim}D but reference {ref.path} is "
                          f"{ref.array.ndim}D", hint="compare label maps of the same dimension")
    n = ref.array.ndim
    ref_to_pred = np.linalg.inv(pred.affine) @ ref.affine
    return ndimage.affine_transform(
        pred.array, ref_to_pred[:n, :n], offset=ref_to_pred[:n, 3], output_shape=ref.array.shape,
        order=0, mode="constant", cval=0,
    )


def _describe(image: LabelMap) -> str:
    from medseg.io.geometry import orientation_code

    origin = ", ".join(f"{v:.2f}" for v in image.affine[:3, 3])
    spacing = ", ".join(f"{v:.3g}" for v in image.spacing)
    return (f"shape {tuple(image.array.shape)}, spacing ({spacing}) mm, origin ({origin}), "
            f"orientation {orientation_code(image.affine)}")
