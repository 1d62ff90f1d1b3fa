"""Shared CLI plumbing for long runs: rich progress bars around ``medseg.training.fit`` in a terminal, one
plain line per epoch (per case for predict, see ``_predict_view``) with elapsed time and an ETA otherwise.

Epochs and cases are counted from 1 everywhere the user sees them (bars, lines, the final message).
"""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(console: Console | None = None) -> Progress:
    """Bars on stderr; disabled (they would print nothing useful) when stderr is not a terminal."""
    console = console or Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal)


def clock(seconds: float) -> str:
    """``h:mm:ss`` like rich's bars."""
    whole = int(round(max(seconds, 0.0)))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class Eta:
    """Elapsed time and a remaining-time estimate from the items finished in this run (resumed or skipped
    items do not count towards the rate)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.start = time.monotonic()
        self.finished = 0

    def step(self, position: int) -> str:
        """Record one finished item; ``position`` is its 1-based place of ``total``. The log line's tail."""
        self.finished += 1
        elapsed = time.monotonic() - self.start
        remaining = elapsed / self.finished * max(self.total - position, 0)
        return f"elapsed {clock(elapsed)}, ETA {clock(remaining)}"


def run_fit(recipe_path: Path | None, overrides: list[str], *, resume: bool, device: str | None,
            export: Path | None, recipe=None, model=None, data=None, overwrite: bool = False) -> None:
    """Load the recipe (unless given), train with progress bars, print the result, optionally export."""
    from medseg.training import fit, load_recipe
    from medseg.training.distributed import DistContext
    from medseg.training.run_folder import (
        check_run_folder,
        drop_old_run,
        move_aside,
        restore_old_run,
    )

    recipe = recipe or load_recipe(recipe_path, overrides)
    output = check_run_folder(recipe, resume=resume, overwrite=overwrite)
    dist = DistContext.from_env(device)
    old = move_aside(output) if overwrite and dist.is_main else None
    console = Console(stderr=True)
    total = recipe.train.epochs
    eta = Eta(total)
    with make_progress(console) as progress:
        epochs = progress.add_task("epochs", total=total)
        iters = progress.add_task("iterations", total=recipe.train.iterations_per_epoch)
        val = progress.add_task("validation", total=1, visible=False)
        done_epochs = 0  # known after the first epoch of a resumed run

        def on_iteration(done: int, of: int) -> None:
            progress.update(iters, completed=done, total=of)
            progress.update(epochs, completed=done_epochs + done / max(of, 1))  # the epoch ETA moves each step

        def on_validation(done: int, of: int) -> None:
            progress.update(val, completed=done, total=of, visible=done < of)

        def on_epoch(row: dict) -> None:
            nonlocal old, done_epochs
            old = drop_old_run(old, output)
            done_epochs = row["epoch"] + 1
            progress.update(epochs, completed=done_epochs)
            progress.reset(iters)
            if not dist.is_main:
                return
            dice = f", val Dice {row['val_dice']:.4f}" if "val_dice" in row else ""
            line = f"epoch {done_epochs}/{total}: loss {row['train_loss']:.4f}{dice}"
            if not console.is_terminal:  # a log file or a pipe: one line per epoch with time and ETA
                console.print(f"{line}, {eta.step(done_epochs)}", highlight=False, soft_wrap=True)
            elif dice:
                console.print(line)

        try:
            result = fit(recipe, resume=resume, model=model, data=data, dist=dist, on_epoch=on_epoch,
                         on_iteration=on_iteration if dist.is_main else None,
                         on_validation=on_validation if dist.is_main else None)
        finally:
            restore_old_run(old, output)
            dist.close()
    if dist.is_main:
        if result.best_dice < 0:  # no validation cases: best.pt is the final epoch (or not reached yet)
            console.print(f"no validation cases, so no validation Dice; best.pt holds the final epoch's weights; "
                          f"files in {result.output}")
        else:
            console.print(f"best validation Dice {result.best_dice:.4f} at epoch {result.best_epoch + 1}/{total}; "
                          f"files in {result.output}")
        if export is not None:
            from medseg.training.export import export_weights

            name = recipe.model.name.replace(".", "_") + ".safetensors"
            summary = export_weights(result.output / "best.pt", export, name)
            console.print(f"exported {export / name} (sha256 {summary['sha256']})")
