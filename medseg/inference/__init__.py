"""Inference: the sliding-window engine, memory-bounded stitching, mapping labels back to the scan's grid,
postprocessing, outputs with provenance, and batch runs over many scans.

Entry points: :class:`~medseg.inference.predictor.Predictor` (one model, many scans) and
:func:`~medseg.inference.batch.run_batch` (files in, files out); ``medseg.api`` wires them for users.
"""
from medseg.inference.postprocess import PostprocessSpec
from medseg.inference.predictor import Prediction, PredictOptions, Predictor

__all__ = ["PostprocessSpec", "PredictOptions", "Prediction", "Predictor"]
