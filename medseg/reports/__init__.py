"""Evaluation of predictions against references: case matching, per-label statistics, JSON/CSV and the
self-contained HTML report. ``evaluate(pred, ref)`` is the entry point."""
from medseg.reports.evaluation import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
