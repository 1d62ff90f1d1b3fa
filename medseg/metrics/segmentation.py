"""Per-label overlap and surface-distance metrics of a prediction against a reference label map.

All labels are handled in one pass: one ``find_objects`` sweep per map gives every label's bounding box,
then each label is cut out of its union bounding box (plus a one-voxel margin) and everything else, the
overlap counts, the surfaces and their distances, runs on that small crop only.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from medseg.core.errors import MedsegError
from medseg.metrics.definitions import CONVENTIONS, DISTANCE_METRICS
from medseg.metrics.reductions import monai_reduce, surfel_reduce
from medseg.metrics.surface import edge_distances, surfel_distances

_DIRECT_LABELS = 65535  # label values up to this are boxed in one find_objects sweep


@dataclass(frozen=True)
class LabelMetrics:
    """Every metric of one label of one case. Distances in mm, volumes in mL (mm² for 2D images)."""

    label: int
    dice: float
    iou: float
    precision: float
    sensitivity: float
    hd: float
    hd95: float
    assd: float
    msd_pred_to_ref: float
    msd_ref_to_pred: float
    nsd: float
    volume_ref: float
    volume_pred: float
    volume_difference: float
    empty_reference: bool
    empty_prediction: bool

    @property
    def distances_infinite(self) -> bool:
        """True when exactly one of prediction and reference is empty (distances are then infinite)."""
        return self.empty_reference != self.empty_prediction

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: infinite distances become ``None``; ``distances_infinite`` flags them."""
        out: dict[str, object] = {}
        for key, value in asdict(self).items():
            out[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        out["distances_infinite"] = self.distances_infinite
        return out


def compute_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    labels: Iterable[int] | None = None,
    *,
    tolerance: float = 1.0,
    convention: str = "monai",
) -> list[LabelMetrics]:
    """Dice, IoU, precision, sensitivity, volumes, HD, HD95, ASSD, directed mean distances and NSD per label.

    Args:
        pred: prediction label map (integers, or a boolean mask meaning label 1), 2D or 3D.
        ref: reference label map of the same shape.
        spacing: voxel size in mm per array axis (default 1 mm).
        labels: label values to evaluate (default: every non-zero value in either map).
        tolerance: NSD tolerance in mm.
        convention: ``"monai"`` (edge voxels, MONAI's numbers) or ``"surface-distance"`` (DeepMind's
            surfel-area weighting). See :func:`medseg.metrics.definitions.definitions`.

    Empty masks follow :data:`medseg.metrics.definitions.EMPTY_RULE`, never NaN.
    """
    if convention not in CONVENTIONS:
        raise MedsegError(f"unknown metric convention {convention!r}", hint=f"use one of {', '.join(CONVENTIONS)}")
    pred, ref = _as_labels(pred, "prediction"), _as_labels(ref, "reference")
    if pred.shape != ref.shape:
        raise MedsegError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    if pred.ndim not in (2, 3):
        raise MedsegError(f"label maps must be 2D or 3D, got {pred.ndim}D")
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0,) * pred.ndim))
    if len(spacing) != pred.ndim or min(spacing) <= 0:
        raise MedsegError(f"spacing {spacing} does not fit a {pred.ndim}D image (one positive value per axis)")
    if tolerance < 0 or not math.isfinite(tolerance):
        raise MedsegError(f"NSD tolerance must be a finite number >= 0 mm, got {tolerance}")
    if labels is not None:
        labels = [int(v) for v in labels]
        if any(v <= 0 for v in labels):
            raise MedsegError(f"labels to evaluate must be positive (0 is background), got {labels}")
    boxes = _label_boxes(pred, ref, labels)
    voxel = float(np.prod(spacing)) / (1000.0 if pred.ndim == 3 else 1.0)
    return [
        _label_metrics(pred, ref, v, box_pred, box_ref, spacing, voxel, tolerance, convention)
        for v, (box_pred, box_ref) in boxes.items()
    ]


def _label_boxes(pred: np.ndarray, ref: np.ndarray, labels: list[int] | None) -> dict[int, tuple]:
    """``{label: (box in pred, box in ref)}`` (None where absent) from one sweep per map; all present
    labels when ``labels`` is None."""
    top = max(int(pred.max(initial=0)), int(ref.max(initial=0)))
    if labels is not None:
        top = min(top, max(labels, default=0))
    if top > _DIRECT_LABELS:  # find_objects keeps one slot per value: go label by label instead
        if labels is None:
            labels = [int(v) for v in np.union1d(np.unique(pred), np.unique(ref)) if v != 0]
        return {v: (_box(pred == v), _box(ref == v)) for v in labels}
    in_pred = ndimage.find_objects(pred, max_label=top) if top else []
    in_ref = ndimage.find_objects(ref, max_label=top) if top else []
    if labels is None:
        labels = [v for v in range(1, top + 1) if in_pred[v - 1] is not None or in_ref[v - 1] is not None]
    return {v: (in_pred[v - 1], in_ref[v - 1]) if v <= top else (None, None) for v in labels}


def _box(mask: np.ndarray) -> tuple[slice, ...] | None:
    found = ndimage.find_objects(mask.view(np.uint8))
    return found[0] if found else None


def _as_labels(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.view(np.uint8)
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise MedsegError(f"the {what} holds non-integer values; it is not a label map",
                              hint="threshold probabilities first")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise MedsegError(f"the {what} has dtype {array.dtype}, expected integer labels")
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise MedsegError(f"the {what} has negative values; label maps hold 0 (background) and positive labels")
    return array


def _label_metrics(pred, ref, label, box_pred, box_ref, spacing, voxel, tolerance, convention) -> LabelMetrics:
    if box_pred is None and box_ref is None:
        return _empty(label, both=True, volume_ref=0.0, volume_pred=0.0)
    boxes = [b for b in (box_pred, box_ref) if b is not None]
    union = tuple(slice(min(b[i].start for b in boxes), max(b[i].stop for b in boxes)) for i in range(pred.ndim))
    p, r = _crop(pred, union, label), _crop(ref, union, label)
    n_pred, n_ref = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    if n_pred == 0 or n_ref == 0:
        return _empty(label, both=False, volume_ref=n_ref * voxel, volume_pred=n_pred * voxel,
                      empty_ref=n_ref == 0)
    tp = int(np.count_nonzero(p & r))
    if convention == "monai":
        distances = monai_reduce(edge_distances(p, r, spacing), tolerance)
    else:
        distances = surfel_reduce(surfel_distances(p, r, spacing), tolerance)
    return LabelMetrics(
        label=label,
        dice=2.0 * tp / (n_pred + n_ref),
        iou=tp / (n_pred + n_ref - tp),
        precision=tp / n_pred,
        sensitivity=tp / n_ref,
        volume_ref=n_ref * voxel,
        volume_pred=n_pred * voxel,
        volume_difference=(n_pred - n_ref) * voxel,
        empty_reference=False,
        empty_prediction=False,
        **distances,
    )


def _crop(labels: np.ndarray, box: tuple[slice, ...], label: int) -> np.ndarray:
    """The label's mask inside ``box``, with one background voxel added on every side."""
    out = np.zeros(tuple(s.stop - s.start + 2 for s in box), dtype=bool)
    out[(slice(1, -1),) * labels.ndim] = labels[box] == label
    return out


def _empty(label: int, *, both: bool, volume_ref: float, volume_pred: float, empty_ref: bool = True) -> LabelMetrics:
    score, distance = (1.0, 0.0) if both else (0.0, math.inf)
    return LabelMetrics(
        label=label, dice=score, iou=score, precision=score, sensitivity=score, nsd=score,
        volume_ref=volume_ref, volume_pred=volume_pred, volume_difference=volume_pred - volume_ref,
        empty_reference=both or empty_ref, empty_prediction=both or not empty_ref,
        **{key: distance for key in DISTANCE_METRICS},
    )
