"""Viewing helpers for notebooks: slices with label overlays, prediction vs reference, landmark graphs,
training curves. Every helper returns a :class:`matplotlib.figure.Figure`.

Not imported by ``import medseg`` (matplotlib is loaded only when a helper is first used)::

    from medseg import viz
    fig = viz.orthogonal_slices(image, labels, card="stunet_t")      # axial / coronal / sagittal, mm aspect
    fig = viz.browse(image, labels)                                  # slice slider (ipywidgets) or a montage
    fig = viz.compare(image, prediction, reference)                  # false positives / negatives coloured
    fig = viz.landmark_overlay(xray, "case.landmarks.json")          # HybridGNet contours
    fig = viz.training_curves("runs/train/history.csv")

Colours are fixed per label value (:func:`label_color`), so label 2 looks the same in every figure.
"""
from __future__ import annotations

from medseg._lazy import lazy_getattr

_LAZY = {
    "orthogonal_slices": "medseg.viz.slices",
    "browse": "medseg.viz.browser",
    "compare": "medseg.viz.comparison",
    "landmark_overlay": "medseg.viz.landmarks",
    "training_curves": "medseg.viz.curves",
    "label_color": "medseg.viz.colors",
    "label_names": "medseg.viz.colors",
    "FALSE_POSITIVE": "medseg.viz.colors",
    "FALSE_NEGATIVE": "medseg.viz.colors",
    "WRONG_LABEL": "medseg.viz.colors",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = list(_LAZY)
