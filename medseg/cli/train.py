"""``medseg train``: train a zoo model from a recipe in ``pipelines/``."""
from __future__ import annotations

from pathlib import Path

import typer


def train(
    recipe: Path = typer.Argument(..., help="TOML recipe, e.g. pipelines/hippocampus/stunet_t.toml."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <output>/last.pt if present."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when present)."),
    export: Path = typer.Option(None, "--export", help="After training, export best.pt to this folder."),
) -> None:
    """Train a model; writes last.pt / best.pt, history.csv and curves.png to train.output.

    Examples:
      medseg train pipelines/hippocampus/stunet_t.toml
      medseg train pipelines/hippocampus/stunet_t.toml --set train.epochs=10 --set train.lr=0.005
      medseg train pipelines/hippocampus/stunet_t.toml --resume
      torchrun --nproc_per_node 2 -m medseg train pipelines/hippocampus/stunet_t.toml
    """
    from medseg.cli._progress import run_fit

    run_fit(recipe, set_, resume=resume, device=device, export=export)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
