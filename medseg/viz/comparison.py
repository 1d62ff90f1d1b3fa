"""Prediction next to reference, with the voxels where they disagree coloured by kind of error."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg.core.errors import MedsegError
from medseg.viz._render import add_scale_bar, draw_slice, slice_title
from medseg.viz._volume import (
    VIEW_AXIS,
    VIEWS,
    as_volume,
    check_view,
    focus_index,
    plane,
)
from medseg.viz.colors import (
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    WRONG_LABEL,
    label_names,
    legend_handles,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def disagreement(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """0 agree, 1 false positive (predicted, reference background), 2 false negative (reference label,
    predicted background), 3 wrong label (both foreground, different labels)."""
    kind = np.zeros(prediction.shape, np.uint8)
    kind[(prediction > 0) & (reference == 0)] = 1
    kind[(prediction == 0) & (reference > 0)] = 2
    kind[(prediction > 0) & (reference > 0) & (prediction != reference)] = 3
    return kind


def _dice(prediction: np.ndarray, reference: np.ndarray, value: int) -> float:
    p, r = prediction == value, reference == value
    total = int(p.sum() + r.sum())
    return 1.0 if total == 0 else 2.0 * float((p & r).sum()) / total


def _amount(count: int, unit: float, planar: bool) -> str:
    """Voxel counts as mL, or pixel counts as mm^2 for 2D images."""
    return f"{count * unit:.1f} mm²" if planar else f"{count * unit / 1000:.2f} mL"


def compare(image: Any, prediction: Any, reference: Any, *, spacing: Sequence[float] | None = None,
            affine: Any = None, names: Any = None, card: Any = None, views: Sequence[str] = VIEWS,
            index: Sequence[int] | None = None, alpha: float = 0.45, title: str | None = None,
            size: float = 2.8) -> Figure:
    """Rows: views; columns: reference, prediction, disagreement (false positives magenta, false negatives
    cyan, wrong label yellow). Per-label Dice goes in the title.

    Args:
        image, prediction, reference: on one grid (MetaTensors, paths or arrays; see ``orthogonal_slices``);
            2D images (PNG masks, X-rays) give one row.
        views: which of axial / coronal / sagittal to show (ignored for 2D images).
        index: voxel (i, j, k) of the input to slice through; default: per view, the slice with the most
            disagreeing voxels (the labels' centroid when they agree everywhere).

    Returns:
        The Figure (``len(views)`` x 3 axes, in mm with equal aspect).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    volume = as_volume(image, reference, spacing=spacing, affine=affine)
    try:
        predicted = as_volume(image, prediction, spacing=spacing, affine=affine).labels
    except MedsegError as exc:
        raise MedsegError(f"prediction: {exc.message}", path=exc.path, hint=exc.hint) from exc
    ref = volume.labels
    wrong = disagreement(predicted, ref)
    views = ["axial"] if volume.planar else [check_view(v) for v in views]
    centre = volume.display_index(index) if index is not None else focus_index(volume)
    present = sorted({int(v) for v in np.unique(ref) if v > 0} | {int(v) for v in np.unique(predicted) if v > 0})
    source = names if names is not None else card if card is not None else prediction
    table = label_names(source, present)
    fig, axes = plt.subplots(len(views), 3, figsize=(3 * size + 0.4, len(views) * size + 1.1), squeeze=False)
    window = volume.window()
    mm3 = float(np.prod(volume.spacing))   # a 2D image: mm^2 per pixel (its third "spacing" is 1)
    for row, view in zip(axes, views):
        axis = VIEW_AXIS[view]
        if index is None and wrong.any():
            k = int(np.argmax(np.moveaxis(wrong > 0, axis, 0).reshape(wrong.shape[axis], -1).sum(1)))
        else:
            k = centre[axis]
        draw_slice(row[0], volume, view, k, alpha=alpha, window=window)
        draw_slice(row[1], volume, view, k, labels=predicted, alpha=alpha, window=window)
        draw_slice(row[2], volume, view, k, labels=np.zeros_like(ref), window=window)
        kinds = plane(wrong, view, k)
        rgba = np.zeros(kinds.shape + (4,), np.float32)
        from matplotlib.colors import to_rgba

        for code, colour in ((1, FALSE_POSITIVE), (2, FALSE_NEGATIVE), (3, WRONG_LABEL)):
            rgba[kinds == code] = to_rgba(colour, 0.85)
        row[2].imshow(rgba, origin="lower", extent=row[2].images[0].get_extent(), interpolation="nearest",
                      aspect="equal")
        for ax, name in zip(row, ("reference", "prediction", "disagreement")):
            ax.set_title(f"{name}, {slice_title(volume, view, k)}", fontsize=8)
        add_scale_bar(row[0])
    counts = [int((wrong == c).sum()) for c in (1, 2, 3)]
    handles = legend_handles(table) + [
        Patch(facecolor=colour, label=f"{kind} ({_amount(count, mm3, volume.planar)})")
        for kind, colour, count in zip(("false positive", "false negative", "wrong label"),
                                       (FALSE_POSITIVE, FALSE_NEGATIVE, WRONG_LABEL), counts)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False, fontsize=8)
    dice = ", ".join(f"{table[v]} {_dice(predicted, ref, v):.3f}" for v in table)
    fig.suptitle((title + "\n" if title else "") + f"Dice: {dice}", fontsize=9)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig
