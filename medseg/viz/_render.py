"""Drawing one slice of a :class:`~medseg.viz._volume.Volume` on a matplotlib axis, in millimetres."""
from __future__ import annotations

import numpy as np

from medseg.viz._volume import VIEW_AXIS, Volume, extent, plane
from medseg.viz.colors import overlay_rgba

#: orientation letters (left, right, bottom, top) of each view; neurological: patient's right on the right
SIDES = {"axial": ("L", "R", "P", "A"), "coronal": ("L", "R", "I", "S"), "sagittal": ("P", "A", "I", "S")}


def draw_slice(ax, volume: Volume, view: str, index: int, *, labels: np.ndarray | None = None,
               alpha: float = 0.45, window: tuple[float, float] | None = None, letters: bool = True) -> None:
    """Grey image of slice ``index`` of ``view`` with ``labels`` (default: the volume's) overlaid.

    The axis gets the slice's physical extent in mm and an equal aspect, so anisotropic voxels are shown
    with their true proportions; ticks are hidden and orientation letters mark the sides.
    """
    low, high = window or volume.window()
    box = extent(volume.image.shape, volume.spacing, view)
    ax.imshow(plane(volume.image, view, index), cmap="gray", vmin=low, vmax=high, origin="lower", extent=box,
              interpolation="nearest", aspect="equal")
    labels = volume.labels if labels is None else labels
    if labels is not None:
        ax.imshow(overlay_rgba(plane(labels, view, index), alpha), origin="lower", extent=box,
                  interpolation="nearest", aspect="equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    if letters and not volume.planar:     # a 2D picture has no known patient frame
        left, right, bottom, top = SIDES[view]
        from matplotlib import patheffects

        style = dict(transform=ax.transAxes, color="white", fontsize=8, fontweight="bold",
                     path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
        ax.text(0.01, 0.5, left, ha="left", va="center", **style)
        ax.text(0.99, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.01, bottom, ha="center", va="bottom", **style)
        ax.text(0.5, 0.99, top, ha="center", va="top", **style)


def slice_title(volume: Volume, view: str, index: int) -> str:
    """``"axial 17/35 (1.0 mm)"``: the view, the slice and the slice thickness (a 2D image: its size)."""
    if volume.planar:
        return f"{volume.image.shape[1]}x{volume.image.shape[0]} px"
    axis = VIEW_AXIS[view]
    return f"{view} {index + 1}/{volume.image.shape[axis]} ({volume.spacing[axis]:g} mm)"


def add_scale_bar(ax, length_mm: float | None = None) -> None:
    """A white bar with its length in mm in the lower-left corner (about a fifth of the width)."""
    left, right = sorted(ax.get_xlim())
    bottom, top = sorted(ax.get_ylim())
    width = right - left
    if length_mm is None:
        raw = width / 5
        length_mm = max(v for v in (1, 2, 5, 10, 20, 50, 100, 200) if v <= max(raw, 1))
    x0, y0 = left + 0.05 * width, bottom + 0.06 * (top - bottom)
    ax.plot([x0, x0 + length_mm], [y0, y0], color="white", lw=2, solid_capstyle="butt")
    from matplotlib import patheffects

    ax.text(x0 + length_mm / 2, y0 + 0.02 * (top - bottom), f"{length_mm:g} mm", color="white", fontsize=7,
            ha="center", va="bottom", path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
