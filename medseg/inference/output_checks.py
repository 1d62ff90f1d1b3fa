"""Checks before any model runs: outputs never overwrite inputs, output folders are writable and have
room, and hidden temp files left by a killed earlier run are removed."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.core.atomic import check_writable, clean_stale_temps
from medseg.core.log import get_logger
from medseg.core.paths import (
    check_output_file,
    check_output_folder,
    refuse_writing_inputs,
)
from medseg.inference.cases import Case
from medseg.inference.outputs import case_files

logger = get_logger(__name__)
MIN_FREE_BYTES = 1 << 20


def written_paths(case: Case, output_type: str, *, stats: bool, probabilities: bool, soft: bool) -> list[Path]:
    """Every path a case will write (a per-class label folder counts as one path, replaced whole)."""
    files = case_files(case, output_type)
    paths = [files.labels, files.sidecar]
    if stats:
        paths += [files.stats_csv, files.stats_json]
    if probabilities:
        paths.append(files.probabilities)
    if soft and files.soft is not None:
        paths.append(files.soft)
    return paths


def _input_bytes(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def check_outputs(cases: Sequence[Case], output_type: str, *, stats: bool = False, probabilities: bool = False,
                  soft: bool = False, classes: int = 1) -> dict[Path, list[Path]]:
    """Refuse outputs that would overwrite an input, check every output folder is writable with roughly
    enough free space (the largest input's size, times the classes when probabilities are written), and
    clean stale temp files there. Returns the temp files removed per folder."""
    outputs = {case: written_paths(case, output_type, stats=stats, probabilities=probabilities, soft=soft)
               for case in cases}
    refuse_writing_inputs([p for paths in outputs.values() for p in paths], [c.input for c in cases])
    need: dict[Path, int] = {}
    for case, paths in outputs.items():
        if output_type == "per-class":
            check_output_folder(case.output, option="-o")
        for path in paths[1 if output_type == "per-class" else 0:]:
            check_output_file(path, option="-o")
        size = _input_bytes(case.input) * (1 + (classes if probabilities else 0))
        folder = case.output.parent
        need[folder] = max(need.get(folder, 0), size)
    removed: dict[Path, list[Path]] = {}
    for folder, size in need.items():
        check_writable(folder, need_bytes=max(size, MIN_FREE_BYTES))
        gone = clean_stale_temps(folder)
        if gone:
            logger.info("%s: removed %d temp files left by an interrupted run", folder, len(gone))
            removed[folder] = gone
    return removed


def predictor_outputs(predictor: Any) -> dict[str, Any]:
    """Which optional outputs ``predictor`` writes: probabilities, soft maps, and its class count."""
    return {"probabilities": bool(predictor.options.probabilities), "soft": bool(getattr(predictor, "save_soft", False)),
            "classes": len(predictor.card.labels)}
