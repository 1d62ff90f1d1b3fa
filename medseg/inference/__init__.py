"""Inference: the sliding-window engine, memory-bounded stitching, mapping labels back to the scan's grid,
postprocessing, outputs with provenance, and batch runs over many scans.

Entry points: :class:`~medseg.inference.predictor.Predictor` (one model, many scans) and
:func:`~medseg.inference.batch.run_batch` (files in, files out); ``medseg.api`` wires them for users.
The names below are imported on first use, so the nnU-Net folder and TotalSegmentator paths, which use
:mod:`medseg.inference.batch` but not the zoo's predictor, do not import MONAI.
"""
from medseg._lazy import lazy_getattr

_LAZY = {
    "PostprocessSpec": "medseg.inference.postprocess",
    "PredictOptions": "medseg.inference.prediction",
    "Prediction": "medseg.inference.prediction",
    "Predictor": "medseg.inference.predictor",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = ["PostprocessSpec", "PredictOptions", "Prediction", "Predictor"]
