"""How well the quality estimates of predictions matched their real Dice (``medseg evaluate``).

Predictions written by ``medseg predict`` carry their estimates in the provenance sidecar beside the label
file (``CASE.json`` for ``CASE.nii.gz``); :func:`attach_quality` pairs each (case, structure) Dice of an
evaluation with its ``predicted_dice`` and ``flag`` and adds the agreement to ``result.summary["quality"]``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medseg.core.log import get_logger
from medseg.quality.calibration import spearman

DEFAULT_FLAG_BELOW = 0.8   # the same default as medseg.quality.estimate (which loads the inference stack)

logger = get_logger(__name__)


def sidecar_quality(prediction: Any) -> dict[str, Any] | None:
    """The ``quality`` block of the sidecar next to a prediction file (None if there is none)."""
    if not isinstance(prediction, (str, Path)):
        return None
    path = Path(prediction)
    from medseg.io import split_ext

    sidecar = path.parent / f"{split_ext(path)[0]}.json"
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    quality = record.get("quality") if isinstance(record, dict) else None
    return quality if isinstance(quality, dict) and quality else None


def agreement(pairs: list[tuple[float | None, bool, float]], *, bad_below: float = DEFAULT_FLAG_BELOW
              ) -> dict[str, Any]:
    """Spearman(predicted, actual Dice) and flag counts from ``(predicted_dice, flag, actual_dice)`` pairs."""
    scored = [(p, d) for p, _, d in pairs if p is not None]
    bad = [f for _, f, d in pairs if d < bad_below]
    rho = spearman([p for p, _ in scored], [d for _, d in scored]) if scored else float("nan")
    return {
        "structures": len(pairs),
        "with_predicted_dice": len(scored),
        "spearman": None if np.isnan(rho) else round(rho, 4),
        "mean_abs_error": round(float(np.mean([abs(p - d) for p, d in scored])), 4) if scored else None,
        "bad_below": bad_below,
        "bad": len(bad),
        "bad_flagged": int(sum(bad)),
        "flagged": int(sum(f for _, f, _ in pairs)),
        "good_flagged": int(sum(f for _, f, d in pairs if d >= bad_below)),
    }


def attach_quality(result: Any, *, bad_below: float = DEFAULT_FLAG_BELOW) -> dict[str, Any] | None:
    """Add ``summary["quality"]`` to an :class:`~medseg.reports.evaluation.EvaluationResult` whose
    predictions carry quality estimates; returns it (None when no prediction has any)."""
    blocks = {case: sidecar_quality(pred) for case, (pred, _) in result.sources.items()}
    pairs: list[tuple[float | None, bool, float]] = []
    for row in result.cases:
        block = blocks.get(row.get("case"))
        if not block or row.get("dice") is None:
            continue
        by_name = {str(k).lower(): v for k, v in block.items()}
        entry = by_name.get(str(row.get("label_name", "")).lower())
        if entry is None:
            continue
        pairs.append((entry.get("predicted_dice"), bool(entry.get("flag")), float(row["dice"])))
    if not pairs:
        return None
    summary = agreement(pairs, bad_below=bad_below)
    result.summary["quality"] = summary
    return summary


def describe(summary: dict[str, Any]) -> str:
    """One line for the terminal."""
    rho = summary["spearman"]
    text = (f"quality estimates: {summary['structures']} structures, Spearman(predicted, actual Dice) "
            f"{'n/a' if rho is None else f'{rho:.2f}'}; flagged {summary['flagged']}, catching "
            f"{summary['bad_flagged']} of {summary['bad']} with Dice < {summary['bad_below']:g}")
    return text + f" ({summary['good_flagged']} flagged with Dice >= {summary['bad_below']:g})"
