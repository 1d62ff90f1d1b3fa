"""Label-map clean-up: keep the largest component per class, remove small islands, fill holes.

Each class is processed inside its own bounding box (one ``find_objects`` pass over the volume), so the
cost scales with the size of the structures, not classes x volume. Components use full (26-)connectivity.
Card keys (``ModelCard.postprocess``): ``keep_largest`` (bool or list of class names/values),
``min_island_mm3`` (float), ``fill_holes`` (bool or list). The output keys (``sauna``, ``threshold``,
``label_values``: how logits become a label map, :mod:`medseg.models.heads`) are not clean-up steps and
are skipped here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.core.card import OUTPUT_KEYS
from medseg.core.errors import MedsegError

Selection = bool | tuple[int | str, ...]


@dataclass(frozen=True)
class PostprocessSpec:
    """What to clean up; ``True`` means every foreground class, a tuple lists classes by name or value."""

    keep_largest: Selection = False
    min_island_mm3: float = 0.0
    fill_holes: Selection = False

    @property
    def active(self) -> bool:
        return bool(self.keep_largest) or self.min_island_mm3 > 0 or bool(self.fill_holes)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> PostprocessSpec:
        """Build from a card's ``postprocess`` mapping (unknown keys are an error)."""
        values = {k: v for k, v in dict(values or {}).items() if k not in OUTPUT_KEYS}
        unknown = set(values) - {"keep_largest", "min_island_mm3", "fill_holes"}
        if unknown:
            raise MedsegError(f"unknown postprocess keys {sorted(unknown)}",
                              hint="use keep_largest, min_island_mm3, fill_holes")
        return cls(
            keep_largest=_selection(values.get("keep_largest", False)),
            min_island_mm3=float(values.get("min_island_mm3", 0.0) or 0.0),
            fill_holes=_selection(values.get("fill_holes", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"keep_largest": _jsonable(self.keep_largest), "min_island_mm3": self.min_island_mm3,
                "fill_holes": _jsonable(self.fill_holes)}


def _selection(value: Any) -> Selection:
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(value)
    raise MedsegError(f"postprocess selection must be true/false or a list of classes, got {value!r}")


def _jsonable(value: Selection) -> Any:
    return value if isinstance(value, bool) else list(value)


def _selected(selection: Selection, value: int, names: Sequence[str]) -> bool:
    if selection is True:
        return True
    if not selection:
        return False
    name = names[value] if value < len(names) else str(value)
    return value in selection or name in selection


def postprocess_labels(labels: np.ndarray, spec: PostprocessSpec, *, spacing: Sequence[float],
                       names: Sequence[str] = ()) -> np.ndarray:
    """Apply ``spec`` to an integer label map in place (and return it).

    Args:
        labels: label map (any integer dtype), 2D or 3D.
        spacing: voxel size in mm per axis (for ``min_island_mm3``).
        names: class name per label value (to resolve selections given by name).
    """
    if not spec.active:
        return labels
    voxel_mm3 = float(np.prod(spacing[: labels.ndim]))
    min_voxels = int(np.ceil(spec.min_island_mm3 / voxel_mm3)) if spec.min_island_mm3 > 0 else 0
    structure = np.ones((3,) * labels.ndim, dtype=bool)
    boxes = ndimage.find_objects(labels)
    for index, box in enumerate(boxes):
        value = index + 1
        if box is None:
            continue
        keep = _selected(spec.keep_largest, value, names)
        fill = _selected(spec.fill_holes, value, names)
        if not (keep or min_voxels or fill):
            continue
        view = labels[box]
        mask = view == value
        if keep or min_voxels:
            components, count = ndimage.label(mask, structure=structure)
            if count > 1 or min_voxels:
                sizes = np.bincount(components.ravel())
                sizes[0] = 0
                drop = np.zeros(count + 1, dtype=bool)
                if keep and count > 1:
                    drop[1:] = True
                    drop[int(sizes.argmax())] = False
                if min_voxels:
                    drop |= sizes < min_voxels
                    drop[0] = False
                removed = drop[components]
                view[removed] = 0
                mask &= ~removed
        if fill and mask.any():
            holes = ndimage.binary_fill_holes(mask) & ~mask & (view == 0)
            view[holes] = value
    return labels
