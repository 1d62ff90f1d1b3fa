"""Scroll through the slices of one view: a slider in Jupyter (ipywidgets), a static montage elsewhere."""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg.core.log import get_logger
from medseg.viz._render import add_scale_bar, draw_slice, slice_title
from medseg.viz._volume import VIEW_AXIS, Volume, as_volume, check_view
from medseg.viz.colors import label_names, legend_handles

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = get_logger(__name__)


def widgets_available() -> bool:
    """True inside a running IPython kernel with ipywidgets installed (optional dependency)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        importlib.import_module("ipywidgets")
    except ImportError:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _range(volume: Volume, axis: int) -> tuple[int, int]:
    """First and last slice along ``axis`` holding labels (the whole axis without labels)."""
    if volume.labels is not None and np.any(volume.labels > 0):
        hit = np.nonzero(np.moveaxis(volume.labels > 0, axis, 0).reshape(volume.labels.shape[axis], -1).any(1))[0]
        return int(hit[0]), int(hit[-1])
    return 0, volume.image.shape[axis] - 1


def browse(image: Any, labels: Any = None, *, view: str = "axial", spacing: Sequence[float] | None = None,
           affine: Any = None, names: Any = None, card: Any = None, alpha: float = 0.45,
           interactive: bool | None = None, montage: int = 6, size: float = 3.2) -> Figure:
    """A slice slider for ``view`` when ipywidgets runs in a kernel, else a montage of ``montage`` slices
    spread evenly over the labelled range (the whole volume without labels).

    Args:
        image, labels, spacing, affine, names, card: as for :func:`medseg.viz.orthogonal_slices`.
        view: ``axial``, ``coronal`` or ``sagittal``.
        interactive: force the slider (True) or the montage (False); None decides by availability.

    Returns:
        The Figure. With the slider, it is displayed inside the widget (``fig.medseg_widget``) and redrawn
        as the slider moves; end the cell with ``;`` to avoid showing it twice.
    """
    import matplotlib.pyplot as plt

    view = check_view(view)
    volume = as_volume(image, labels, spacing=spacing, affine=affine)
    axis = VIEW_AXIS[view]
    h, v = [a for a in range(3) if a != axis]
    ratio = volume.image.shape[h] * volume.spacing[h] / (volume.image.shape[v] * volume.spacing[v])
    first, last = _range(volume, axis)
    window = volume.window()
    present = [] if volume.labels is None else [int(x) for x in np.unique(volume.labels) if x > 0]
    table = label_names(names if names is not None else card if card is not None else labels, present)
    if interactive is None:
        interactive = widgets_available()
    if interactive:
        return _slider(volume, view, (first + last) // 2, table, alpha, window, size, ratio)
    span = last - first + 1                  # centres of ``montage`` equal parts: no near-empty end slices
    picks = sorted({first + int((i + 0.5) * span / montage) for i in range(montage)})
    cols = min(len(picks), 3)
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size * ratio + 0.4, rows * (size + 0.4) + 0.6),
                             squeeze=False)
    for ax, k in zip(axes.flat, picks):
        draw_slice(ax, volume, view, k, alpha=alpha, window=window)
        ax.set_title(slice_title(volume, view, k), fontsize=8)
    for ax in list(axes.flat)[len(picks):]:
        ax.set_visible(False)
    add_scale_bar(axes.flat[0])
    _legend(fig, table)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if table else 0, 1, 1))
    return fig


def _legend(fig, table) -> None:
    handles = legend_handles(table)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=9)


def _slider(volume: Volume, view: str, start: int, table, alpha, window, size, ratio) -> Figure:
    import matplotlib.pyplot as plt
    from IPython.display import display

    widgets = importlib.import_module("ipywidgets")
    axis = VIEW_AXIS[view]
    fig, ax = plt.subplots(figsize=(size * ratio + 0.4, size + 0.8))
    plt.close(fig)   # shown through the widget's output, not again by the inline backend

    def draw(k: int) -> None:
        ax.clear()
        draw_slice(ax, volume, view, k, alpha=alpha, window=window)
        ax.set_title(slice_title(volume, view, k), fontsize=9)
        add_scale_bar(ax)

    draw(start)
    _legend(fig, table)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if table else 0, 1, 1))
    slider = widgets.IntSlider(value=start, min=0, max=volume.image.shape[axis] - 1, description=view,
                               continuous_update=False)
    output = widgets.Output()

    def show(k: int) -> None:
        draw(k)
        with output:
            output.clear_output(wait=True)
            display(fig)

    slider.observe(lambda change: show(int(change["new"])), names="value")
    show(start)
    box = widgets.VBox([slider, output])
    display(box)
    fig.medseg_widget = box
    return fig
