"""``--resume`` with another ``--flag-below``: re-decide the flags of a finished case without predicting again.

A flag is ``predicted_dice < flag_below`` (:func:`medseg.quality.estimate.decide`), so a case finished by an
earlier run only needs its flags recomputed from the predicted Dice its sidecar already holds. Structures
without a predicted Dice (no calibration: flagged when out of domain or missing) keep their flag. When a
flag changes, the ``--stats`` files (their ``quality_flag`` column) and then the sidecar are rewritten
atomically, the sidecar last with the new sizes of the stats files, so the case stays complete for the next
``--resume``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medseg.core.log import get_logger

logger = get_logger(__name__)


def reflag(quality: dict[str, Any], flag_below: float) -> dict[str, Any]:
    """The quality block with every flag that has a predicted Dice re-decided against ``flag_below``."""
    out = {}
    for name, entry in quality.items():
        entry = dict(entry)
        predicted = entry.get("predicted_dice")
        if predicted is not None:
            entry["flag"] = bool(predicted < flag_below)
        out[name] = entry
    return out


def refresh_flags(files: Any, flag_below: float) -> list[str]:
    """Re-flag the finished case whose outputs are ``files`` (:class:`~medseg.inference.outputs.CaseFiles`)
    for ``flag_below``; returns its flagged structures (what the batch table shows)."""
    from medseg.inference.provenance import read_sidecar, write_sidecar
    from medseg.inference.stats import write_statistics

    record = read_sidecar(files.sidecar)
    quality = (record or {}).get("quality")
    if record is None or not isinstance(quality, dict) or not quality:
        return []
    new = reflag(quality, flag_below)
    flagged = [name for name, entry in new.items() if entry.get("flag")]
    if new == quality:
        return flagged
    outputs = record.get("outputs", {})
    if "stats_json" in outputs and "stats_csv" in outputs:
        stats = json.loads(Path(files.stats_json).read_text(encoding="utf-8"))
        rows = stats.pop("structures")
        for row in rows:
            if row.get("name") in new and "quality_flag" in row:
                row["quality_flag"] = new[row["name"]].get("flag")
        write_statistics(rows, files.stats_csv, files.stats_json, extra=stats)
        for key, path in (("stats_csv", files.stats_csv), ("stats_json", files.stats_json)):
            outputs[key]["bytes"] = Path(path).stat().st_size
    record["quality"] = new
    write_sidecar(files.sidecar, record)
    logger.info("%s: flags re-decided for --flag-below %g", files.sidecar, flag_below)
    return flagged
