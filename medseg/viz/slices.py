"""Axial, coronal and sagittal slices of a volume with its labels, in true physical proportions."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg.viz._render import add_scale_bar, draw_slice, slice_title
from medseg.viz._volume import VIEW_AXIS, VIEWS, as_volume, focus_index
from medseg.viz.colors import label_names, legend_handles

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def orthogonal_slices(image: Any, labels: Any = None, *, spacing: Sequence[float] | None = None, affine: Any = None,
                      names: Any = None, card: Any = None, index: Sequence[int] | None = None, alpha: float = 0.45,
                      title: str | None = None, size: float = 3.2) -> Figure:
    """Three orthogonal slices through one voxel, labels overlaid, legend with the label names.

    Args:
        image: MetaTensor (``medseg.io.read_image``), path, or (x, y, z) / (1, x, y, z) array; a 2D image
            (PNG, X-ray, 2D array) is shown in one panel as image viewers show it.
        labels: label map on the same grid (e.g. ``medseg.predict(...)``), or None.
        spacing, affine: geometry for plain arrays (MetaTensors carry their own).
        names: label names (sequence, ``{value: name}``); default: ``card``, then ``labels.meta["labels"]``.
        card: a model card or model name whose ``labels`` name the values.
        index: the voxel (i, j, k) of the input array to slice through; default: the labels' centroid.
        size: height of one panel in inches.

    Returns:
        The Figure: one axis per view (axial, coronal, sagittal; one for a 2D image), extents in mm,
        equal aspect.
    """
    import matplotlib.pyplot as plt

    volume = as_volume(image, labels, spacing=spacing, affine=affine)
    point = volume.display_index(index) if index is not None else focus_index(volume)
    views = ("axial",) if volume.planar else VIEWS   # a 2D image: one panel
    widths = []
    for view in views:
        h, v = [a for a in range(3) if a != VIEW_AXIS[view]]
        widths.append(volume.image.shape[h] * volume.spacing[h] / (volume.image.shape[v] * volume.spacing[v]))
    fig, axes = plt.subplots(1, len(views), figsize=(size * sum(widths) + 0.6, size + 0.9),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    axes = axes[0]
    window = volume.window()
    for ax, view in zip(axes, views):
        k = point[VIEW_AXIS[view]]
        draw_slice(ax, volume, view, k, alpha=alpha, window=window)
        ax.set_title(slice_title(volume, view, k), fontsize=9)
    add_scale_bar(axes[0])
    present = [] if volume.labels is None else [int(v) for v in np.unique(volume.labels) if v > 0]
    if volume.labels is not None:
        table = label_names(names if names is not None else card if card is not None else labels, present)
        handles = legend_handles(table)
        if handles:
            fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if volume.labels is not None else 0, 1, 1))
    return fig
