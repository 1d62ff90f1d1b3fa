"""Shared CLI plumbing for long runs: rich progress bars around ``medseg.training.fit``."""
from __future__ import annotations

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


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


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
    with make_progress() as progress:
        epochs = progress.add_task("epochs", total=recipe.train.epochs)
        iters = progress.add_task("iterations", total=recipe.train.iterations_per_epoch)

        def on_iteration(done: int, total: int) -> None:
            progress.update(iters, completed=done, total=total)

        def on_epoch(row: dict) -> None:
            nonlocal old
            old = drop_old_run(old, output)
            progress.update(epochs, completed=row["epoch"] + 1)
            progress.reset(iters)
            if "val_dice" in row and dist.is_main:
                console.print(f"epoch {row['epoch']}: loss {row['train_loss']:.4f}, val Dice {row['val_dice']:.4f}")

        try:
            result = fit(recipe, resume=resume, model=model, data=data, dist=dist, on_epoch=on_epoch,
                         on_iteration=on_iteration if dist.is_main else None)
        finally:
            restore_old_run(old, output)
            dist.close()
    if dist.is_main:
        if result.best_dice < 0:  # no validation cases: best.pt is the final epoch (or not reached yet)
            console.print(f"no validation cases, so no validation Dice; best.pt holds the final epoch's weights; "
                          f"files in {result.output}")
        else:
            console.print(f"best validation Dice {result.best_dice:.4f} at epoch {result.best_epoch}; "
                          f"files in {result.output}")
        if export is not None:
            from medseg.training.export import export_weights

            name = recipe.model.name.replace(".", "_") + ".safetensors"
            summary = export_weights(result.output / "best.pt", export, name)
            console.print(f"exported {export / name} (sha256 {summary['sha256']})")
