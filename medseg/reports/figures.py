"""Report figures as PNG bytes: per-label box/strip plots and prediction-vs-reference overlays.

Colours are the Okabe-Ito palette (readable with colour-vision deficiency and in greyscale print).
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MISSED = "#E69F00"   # in the reference only (false negative)
EXTRA = "#0072B2"    # in the prediction only (false positive)
AGREE = "#8c8c8c"    # in both
CONTEXT = "#e4e4e4"  # other labels of the reference
DPI = 144


class _Figures:
    """pyplot's ``figure``/``subplots``/``close`` without pyplot: figures are rendered off-screen and the
    global backend (e.g. Jupyter's inline backend) is left alone."""

    @staticmethod
    def figure(figsize=None):
        from matplotlib.figure import Figure

        return Figure(figsize=figsize)

    @staticmethod
    def subplots(*args, figsize=None, **kwargs):
        fig = _Figures.figure(figsize)
        return fig, fig.subplots(*args, **kwargs)

    @staticmethod
    def close(fig) -> None:
        """Nothing to release: these figures are not registered with pyplot."""


def _pyplot():
    return _Figures


def _png(fig, tight: bool = True) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight" if tight else None, facecolor="white")
    _pyplot().close(fig)
    return buffer.getvalue()


def metric_plot(rows: Sequence[Mapping[str, Any]], labels: Mapping[int, str], metric: str, title: str) -> bytes:
    """Horizontal box plot per label with every case as a jittered dot; infinite values marked at the edge."""
    plt = _pyplot()
    order = list(labels)
    values = {v: [r[metric] for r in rows if r["label"] == v] for v in order}
    finite = {v: [x for x in xs if x is not None and math.isfinite(x)] for v, xs in values.items()}
    height = 0.9 + 0.42 * len(order)
    fig, ax = plt.subplots(figsize=(6.4, height))
    positions = np.arange(len(order))[::-1]
    data = [finite[v] if finite[v] else [np.nan] for v in order]
    ax.boxplot(data, positions=positions, **_horizontal(), widths=0.55, showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#dbe9f6", "edgecolor": "#3b5b7a"}, medianprops={"color": "#1b1b1b"},
               whiskerprops={"color": "#3b5b7a"}, capprops={"color": "#3b5b7a"})
    rng = np.random.default_rng(0)
    all_finite = [x for xs in finite.values() for x in xs]
    right = max(all_finite) if all_finite else 1.0
    for pos, v in zip(positions, order):
        xs = finite[v]
        ax.scatter(xs, pos + rng.uniform(-0.17, 0.17, len(xs)), s=9, color="#1b1b1b", alpha=0.55, linewidths=0,
                   zorder=3)
        n_inf = len(values[v]) - len(xs)
        if n_inf:
            ax.annotate(f"{n_inf} × ∞", (1.0, pos), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=8, color="#b00020")
    ax.set_yticks(positions)
    ax.set_yticklabels([_short(labels[v]) for v in order], fontsize=9)
    ax.set_ylim(-0.7, len(order) - 0.3)
    if metric == "dice":
        ax.set_xlim(-0.02, 1.02)
    else:
        ax.set_xlim(left=0, right=right * 1.05 + 1e-9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _png(fig)


def overlay(pred: np.ndarray, ref: np.ndarray, affine: np.ndarray, label: int, title: str) -> tuple[bytes, str]:
    """Prediction vs reference for one label on the slice where they disagree most.

    3D maps are reoriented to RAS and shown as an axial slice in radiological view (patient right on the
    left, anterior up), cropped around the structure. Returns the PNG and a description of the slice.
    """
    plt = _pyplot()
    if pred.ndim == 3:
        pred, ref, spacing = _to_ras(pred, affine), _to_ras(ref, affine), _ras_spacing(affine)
        p, r = pred == label, ref == label
        disagreement = np.count_nonzero(p != r, axis=(0, 1))
        index = int(np.argmax(disagreement)) if disagreement.any() else int(np.argmax(r.sum(axis=(0, 1))))
        p, r, context = p[:, :, index], r[:, :, index], (ref[:, :, index] != 0)
        where = f"axial slice {index} of {pred.shape[2]} (RAS), {int(disagreement[index])} voxels disagree"
        aspect = spacing[1] / spacing[0]
    else:
        p, r, context = pred == label, ref == label, ref != 0
        where = f"{int(np.count_nonzero(p != r))} pixels disagree"
        spacing = np.linalg.norm(affine[:3, :2], axis=0)
        aspect = spacing[1] / spacing[0]
    rgb = np.ones(p.shape + (3,))
    for mask, colour in ((context, CONTEXT), (p & r, AGREE), (r & ~p, MISSED), (p & ~r, EXTRA)):
        rgb[mask] = _rgb(colour)
    box = _crop_box(p | r)
    rgb = rgb[box]
    fig = plt.figure(figsize=(3.0, 3.2))  # one size for every overlay: an even grid, equal title sizes
    ax = fig.add_axes((0.03, 0.02, 0.94, 0.88))
    # rows = second array axis (anterior up), columns = first axis flipped (radiological)
    ax.imshow(np.transpose(rgb, (1, 0, 2))[::-1, ::-1] if pred.ndim == 3 else np.transpose(rgb, (1, 0, 2)),
              aspect=aspect, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if pred.ndim == 3:
        orientation_letters(ax)
    ax.set_title(title, fontsize=8, loc="left")
    return _png(fig, tight=False), where


def orientation_letters(ax: Any, radiological: bool = True) -> None:
    """R/L on the sides and A/P at top and bottom of an axial slice (radiological: the patient's right is on
    the left)."""
    style = {"fontsize": 7, "color": "#333333", "transform": ax.transAxes, "fontweight": "bold",
             "bbox": {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}}
    left, right = ("R", "L") if radiological else ("L", "R")
    ax.text(0.015, 0.5, left, ha="left", va="center", **style)
    ax.text(0.985, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.985, "A", ha="center", va="top", **style)
    ax.text(0.5, 0.015, "P", ha="center", va="bottom", **style)


def _horizontal() -> dict[str, Any]:
    """Horizontal boxes: ``orientation=`` from Matplotlib 3.10 on, ``vert=False`` before."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _crop_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The mask's bounding box grown by a quarter of its size (at least 12 voxels), whole slice if empty."""
    if not mask.any():
        return (slice(None), slice(None))
    box = []
    for axis in range(2):
        idx = np.flatnonzero(mask.any(axis=1 - axis))
        margin = max(12, (idx[-1] - idx[0]) // 4)
        box.append(slice(max(0, idx[0] - margin), min(mask.shape[axis], idx[-1] + margin + 1)))
    return tuple(box)  # type: ignore[return-value]


def _to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import nibabel as nib

    return nib.orientations.apply_orientation(array, nib.orientations.io_orientation(affine))


def _ras_spacing(affine: np.ndarray) -> np.ndarray:
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    out = np.empty(3)
    out[ornt[:, 0].astype(int)] = spacing
    return out


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
