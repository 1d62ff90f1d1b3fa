"""One colour per label value, the same in every figure, and label names from a model card.

Labels 1-7 use the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies);
higher values cycle through ``tab20``. Disagreement colours are shown in their own panel, never over labels.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

FALSE_POSITIVE = "#FF00FF"   # predicted, not in the reference (magenta)
FALSE_NEGATIVE = "#00E5FF"   # in the reference, missed (cyan)
WRONG_LABEL = "#FFD600"      # foreground in both, but a different label (yellow)


def label_color(value: int) -> tuple[float, float, float]:
    """The RGB colour (0-1) of label ``value`` (> 0): fixed, whatever else is in the figure."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    value = int(value)
    if value <= 0:
        raise ValueError("label 0 is background and has no colour")
    if value <= len(OKABE_ITO):
        return to_rgb(OKABE_ITO[value - 1])
    return tuple(colormaps["tab20"]((value - len(OKABE_ITO) - 1) % 20)[:3])


def overlay_rgba(labels: np.ndarray, alpha: float) -> np.ndarray:
    """An RGBA image of a 2D label slice: each label in its colour at ``alpha``, background transparent."""
    labels = np.asarray(labels)
    rgba = np.zeros(labels.shape + (4,), np.float32)
    for value in np.unique(labels):
        if value > 0:
            rgba[labels == value] = (*label_color(int(value)), alpha)
    return rgba


def label_names(source: Any = None, values: Sequence[int] = ()) -> dict[int, str]:
    """``{value: name}`` for the foreground labels.

    ``source``: a :class:`~medseg.core.card.ModelCard`, a model name (``"stunet_t"``), a model with
    ``.card``, a MetaTensor from :func:`medseg.predict` (``meta["labels"]``), a sequence of names
    (index = value, ``[0]`` = background) or a ``{value: name}`` mapping. Values without a name (and
    every value when ``source`` is None) are called ``label <value>``.
    """
    names: dict[int, str] = {}
    if isinstance(source, PathLike) or (isinstance(source, str) and os.path.exists(source)):
        source = None                      # a label file: values only (names travel with predict's MetaTensor)
    if isinstance(source, str):
        from medseg.models import get_card

        source = get_card(source)
    if hasattr(source, "card") and not hasattr(source, "labels"):
        source = source.card
    if hasattr(source, "shape"):           # a label map: only a MetaTensor from predict carries names
        meta = getattr(source, "meta", None)
        source = meta["labels"] if isinstance(meta, Mapping) and "labels" in meta else None
    if hasattr(source, "labels") and hasattr(source, "spatial_dims"):
        source = source.labels
    if isinstance(source, Mapping):
        names = {int(k): str(v) for k, v in source.items()}
    elif source is not None:
        names = {i: str(n) for i, n in enumerate(source)}
    names.pop(0, None)
    for value in values:
        if int(value) > 0:
            names.setdefault(int(value), f"label {int(value)}")
    return dict(sorted(names.items()))


def legend_handles(names: Mapping[int, str]) -> list:
    """Legend patches, one per named foreground label, in label order."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=label_color(v), edgecolor="none", label=n) for v, n in sorted(names.items()) if v > 0]
