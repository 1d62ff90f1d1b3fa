"""``medseg train``: train a zoo model from a recipe in ``pipelines/``."""
from __future__ import annotations

from pathlib import Path

import typer


def train(
    recipe: Path = typer.Argument(..., help="TOML recipe, e.g. pipelines/hippocampus/stunet_t.toml."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <output>/last.pt if present."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in a run folder that has a checkpoint "
                                   "(the old run is moved to OUTPUT.old-TIME, deleted after the first new checkpoint)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when present)."),
    export: Path = typer.Option(None, "--export", help="After training, export best.pt to this folder."),
) -> None:
    r"""Train a model; writes last.pt / best.pt, history.csv and curves.png to train.output.

    A cascade recipe (sections \[cascade], \[stage1.*], \[stage2.*]) trains both stages: stage 1 per fold
    (out-of-fold priors) and on all cases, then stage 2 on image + priors in each organ's ROI (then, with the
    key superpixels = true in \[cascade], DeepOrgan's regional stage on the same crops); --resume skips
    finished stages.
    --set stage1.train.epochs=N sets one stage, --set train.threads=N both.

    Examples:
      medseg train pipelines/hippocampus/stunet_t.toml
      medseg train pipelines/hippocampus/stunet_t.toml --set train.epochs=10 --set train.lr=0.005
      medseg train pipelines/hippocampus/stunet_t.toml --resume
      torchrun --nproc_per_node 2 -m medseg train pipelines/hippocampus/stunet_t.toml
      medseg train pipelines/cascade/pancreas_ct.toml --resume --set stage1.train.epochs=20
    """
    from medseg.cascade.train_cascade import is_cascade_recipe

    if is_cascade_recipe(recipe):
        if overwrite:
            from medseg.core.errors import MedsegError

            raise MedsegError("--overwrite is not offered for cascades", hint="give another train.output, or --resume")
        _train_cascade(recipe, set_, resume=resume, device=device, export=export)
        return
    from medseg.cli._progress import run_fit

    run_fit(recipe, set_, resume=resume, device=device, export=export, overwrite=overwrite)


def _train_cascade(recipe: Path, overrides: list[str], *, resume: bool, device: str | None, export: Path | None) -> None:
    """Both cascade stages, one status line per stage and per validated epoch."""
    from rich.console import Console

    from medseg.cascade.train_cascade import train_cascade
    from medseg.core.errors import MedsegError
    from medseg.training.distributed import DistContext

    if export is not None:
        raise MedsegError("--export is not offered for cascades",
                          hint="predict with --model cascade.NAME (or --checkpoint FOLDER with stage1/ and stage2/)")
    console = Console(stderr=True)

    def on_epoch(row: dict) -> None:
        if "val_dice" in row:
            console.print(f"  epoch {row['epoch']}: loss {row['train_loss']:.4f}, val Dice {row['val_dice']:.4f}")

    dist = DistContext.from_env(device)
    try:
        result = train_cascade(recipe, overrides=overrides, resume=resume, dist=dist, on_epoch=on_epoch,
                               on_stage=lambda stage, status: console.print(f"{stage}: {status}"))
    finally:
        dist.close()
    console.print(f"cascade trained ({len(result.ran)} stages run, {len(result.skipped)} skipped): "
                  f"stage 1 {result.stage1 / 'best.pt'}, stage 2 {result.stage2 / 'best.pt'}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
