"""Guard a training run folder: never replace a run's checkpoints by accident, never write onto the data.

``medseg train``/``finetune`` into a folder that already holds a checkpoint needs ``--resume`` (continue)
or ``--overwrite`` (start over). ``--overwrite`` first moves the old run aside to ``RUN.old-TIMESTAMP``
and deletes it only once the new run has written its first checkpoint, so a new run that fails early
leaves the old one in place (``restore_old_run`` moves it back).
"""
from __future__ import annotations

import shutil
import time
from os import PathLike
from pathlib import Path

from medseg.core.atomic import check_writable
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.core.paths import (
    check_output_folder,
    looks_like_file,
    refuse_writing_inputs,
)

logger = get_logger(__name__)
RUN_FILES = ("last.pt", "best.pt", "history.csv", "curves.png", "plan.json")


def has_checkpoint(folder: str | PathLike) -> bool:
    """Whether ``folder`` holds a training checkpoint (``*.pt``)."""
    p = Path(folder)
    return p.is_dir() and any(p.glob("*.pt"))


def check_run_folder(recipe, *, resume: bool, overwrite: bool) -> Path:
    """Refuse a run that would replace checkpoints without ``--resume``/``--overwrite``, write into its
    dataset or onto its ``--from`` file, or cannot write its folder; returns the run folder."""
    output = Path(recipe.train.output)
    if resume and overwrite:
        raise MedsegError("--resume and --overwrite contradict each other", hint="give one of them")
    inputs = [Path(recipe.data.dataset)] if recipe.data.dataset else []
    source = recipe.finetune.source
    if source and (Path(source).exists() or looks_like_file(source)):
        inputs.append(Path(source))
    outputs = [output / name for name in RUN_FILES] + ([output] if overwrite else [])
    refuse_writing_inputs(outputs, inputs, option="train.output (-o)")
    check_output_folder(output, option="train.output")
    if has_checkpoint(output) and not resume and not overwrite:
        raise MedsegError("run folder has a checkpoint: --resume to continue, --overwrite to start over, "
                          "or another train.output", path=output)
    check_writable(output.parent if not output.exists() else output)
    return output


def move_aside(output: str | PathLike) -> Path | None:
    """Rename a run folder holding a checkpoint to ``RUN.old-TIMESTAMP``; returns the new name (or None)."""
    p = Path(output)
    if not has_checkpoint(p):
        return None
    old = p.with_name(f"{p.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while old.exists():
        old, n = p.with_name(f"{p.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}"), n + 1
    p.rename(old)
    logger.warning("%s: moved the previous run to %s (deleted once the new run writes a checkpoint)", p, old)
    return old


def drop_old_run(old: Path | None, output: str | PathLike) -> Path | None:
    """Delete the moved-aside run once the new run has a checkpoint; returns ``old`` while it is kept."""
    if old is not None and (Path(output) / "last.pt").is_file():
        shutil.rmtree(old, ignore_errors=True)
        return None
    return old


def restore_old_run(old: Path | None, output: str | PathLike) -> None:
    """Put the moved-aside run back when the new run stopped before writing any checkpoint."""
    p = Path(output)
    if old is None or not old.exists() or has_checkpoint(p):
        return
    if p.exists():
        shutil.rmtree(p, ignore_errors=True)
    old.rename(p)
    logger.warning("%s: the new run wrote no checkpoint; the previous run is back in place", p)
