"""Machine-readable outputs of an evaluation: the JSON document, metrics.csv and summary.json (atomic)."""
from __future__ import annotations

import csv
import io
import json
import math
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.core.atomic import atomic_write_text

if TYPE_CHECKING:
    from medseg.reports.evaluation import EvaluationResult


def write_json(result: EvaluationResult, path: str | PathLike) -> Path:
    """``{"cases", "summary", "definitions"}`` as strict JSON (no NaN/Infinity: infinite distances are null)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    return path


def write_summary_json(result: EvaluationResult, path: str | PathLike) -> Path:
    """The summary with the definitions, for summary.json."""
    path = Path(path)
    document = {"summary": result.summary, "definitions": result.definitions}
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path


def write_csv(result: EvaluationResult, path: str | PathLike) -> Path:
    """One row per case and label; infinite distances are written ``inf``, floats at full precision."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = list(result.cases[0]) if result.cases else ["case", "label", "label_name"]
    writer.writerow(keys)
    for row in result.cases:
        writer.writerow([_cell(key, row[key]) for key in keys])
    atomic_write_text(path, buffer.getvalue())
    return path


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "inf"  # only distances are ever None: the empty-mask rule's infinite distance
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return str(value)
