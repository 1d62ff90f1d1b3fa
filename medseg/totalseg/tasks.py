"""Which nnU-Net result folders make up a TotalSegmentator task, and where they are found.

The table is data (``tasks.json``): task name -> target spacing and the ordered part folders. Folders are
looked up under ``--weights-dir``, ``$TOTALSEG_HOME_DIR/nnunet/results`` and
``~/.totalsegmentator/nnunet/results`` (the first root holding every part wins).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from medseg.core.errors import MedsegError

PREFIX = "totalsegmentator"
DEFAULT_TASK = "total"


@dataclass(frozen=True)
class Part:
    """One nnU-Net result folder of a task: ``<root>/<dataset>/<model>``."""

    task: int
    dataset: str
    model: str
    labels: tuple[str, ...] = ()   # the names its dataset.json must hold, label values 1..n in order

    @property
    def relative(self) -> str:
        return f"{self.dataset}/{self.model}"


@dataclass(frozen=True)
class Task:
    name: str
    spacing_mm: float
    parts: tuple[Part, ...]


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(resources.files(__package__).joinpath("tasks.json").read_text())


def task_names() -> list[str]:
    return [k for k in _table() if not k.startswith("_")]


def is_totalseg_model(ref: str | None) -> bool:
    """True for ``totalsegmentator`` and ``totalsegmentator:TASK``."""
    return bool(ref) and (ref == PREFIX or ref.startswith(PREFIX + ":"))


def parse_task(ref: str) -> Task:
    """``totalsegmentator[:TASK]`` -> the task's table entry (unknown names: a one-line error listing them)."""
    name = ref.split(":", 1)[1] if ":" in ref else DEFAULT_TASK
    entry = _table().get(name) if not name.startswith("_") else None
    if entry is None:
        raise MedsegError(f"unknown TotalSegmentator task {name!r}",
                          hint=f"use --model totalsegmentator:TASK with TASK one of {', '.join(task_names())}")
    parts = tuple(Part(int(p["task"]), str(p["dataset"]), str(p["model"]), tuple(p.get("labels", ())))
                  for p in entry["parts"])
    return Task(name, float(entry["spacing_mm"]), parts)


def search_roots(weights_dir: Path | None = None) -> list[Path]:
    """Where part folders are looked for, in order."""
    roots = []
    if weights_dir is not None:
        roots += [Path(weights_dir), Path(weights_dir) / "nnunet" / "results"]
    home = os.environ.get("TOTALSEG_HOME_DIR")
    if home:
        roots.append(Path(home) / "nnunet" / "results")
    roots.append(Path.home() / ".totalsegmentator" / "nnunet" / "results")
    return roots


def locate(task: Task, weights_dir: Path | None = None) -> list[Path]:
    """The part folders of ``task`` (in merge order) from the first root that holds all of them."""
    roots = search_roots(weights_dir)
    best_missing: list[Part] | None = None
    for root in roots:
        missing = [p for p in task.parts if not (root / p.relative).is_dir()]
        if not missing:
            return [root / p.relative for p in task.parts]
        if best_missing is None or len(missing) < len(best_missing):
            best_missing = missing
    missing = best_missing or list(task.parts)
    expected = ", ".join(p.relative for p in task.parts)
    raise MedsegError(
        f"TotalSegmentator task {task.name!r} needs {len(task.parts)} part folder(s) ({expected}); missing: "
        f"{', '.join(p.dataset for p in missing)} (searched {', '.join(str(r) for r in roots)})",
        hint="download them once with TotalSegmentator (totalseg_download_weights) or copy them by hand, "
             "then pass --weights-dir or set TOTALSEG_HOME_DIR")
