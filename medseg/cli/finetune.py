"""``medseg finetune``: adapt a pretrained model to new data and labels."""
from __future__ import annotations

from pathlib import Path

import typer


def finetune(
    source: str = typer.Option(..., "--from", help="NAME.TAG of shipped weights, or a checkpoint file "
                               "(medseg .pt/.safetensors, official STU-Net .model/.pth)."),
    data: Path = typer.Option(..., "--data", help="MSD/nnU-Net dataset folder or CSV list of pairs."),
    model: str = typer.Option(None, "--model", help="Architecture when --from is a file (e.g. stunet_b)."),
    recipe: Path = typer.Option(None, "--recipe", help="TOML recipe with further settings."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe key: section.key=value (repeatable)."),
    epochs: int = typer.Option(None, "--epochs", help="Number of epochs."),
    freeze_encoder_epochs: int = typer.Option(None, "--freeze-encoder-epochs",
                                              help="Warm-up epochs with the encoder frozen (default 0)."),
    output: Path = typer.Option(None, "--output", "-o", help="Run folder (default runs/finetune_<model>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <output>/last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in a run folder that has a checkpoint "
                                   "(the old run is moved to OUTPUT.old-TIME, deleted after the first new checkpoint)."),
    device: str = typer.Option(None, "--device", help="cpu, cuda or cuda:N."),
    export: Path = typer.Option(None, "--export", help="After training, export best.pt to this folder."),
) -> None:
    """Fine-tune pretrained weights on a new dataset: heads re-initialised for the new labels, input
    channels adapted, learning rate 10x below training from scratch (STU-Net's recipe).

    Examples:
      medseg finetune --from stunet_t.hippocampus --data my_dataset/
      medseg finetune --from base_ep4k.model --model stunet_b --data Task500_Liver/ --epochs 100
      medseg finetune --from stunet_t.hippocampus --data d/ --freeze-encoder-epochs 2 --set train.lr=0.005
    """
    from rich.console import Console

    from medseg.cli._progress import run_fit
    from medseg.core.errors import MedsegError
    from medseg.core.paths import looks_like_file
    from medseg.training.finetune import finetune_recipe, prepare_finetune
    from medseg.training.run_folder import check_run_folder

    if not Path(source).exists() and looks_like_file(source):
        raise MedsegError("--from file not found", path=source, hint="check the path, or give NAME.TAG of shipped weights")
    if Path(source).exists() and model is None:
        raise typer.BadParameter("--model is required when --from is a file", param_hint="--model")
    resolved = finetune_recipe(recipe, source=source, data=data, model=model, epochs=epochs,
                               freeze_encoder_epochs=freeze_encoder_epochs, output=output, overrides=list(set_))
    check_run_folder(resolved, resume=resume, overwrite=overwrite)  # before the slow load; run_fit moves aside
    prepared, net, report = prepare_finetune(resolved)
    console = Console(stderr=True)
    console.print(f"[bold]fine-tune load:[/] {report.summary()}")
    for title, keys in (("re-initialised", report.reinitialised), ("adapted (input channels tiled)", report.adapted),
                        ("unused from the checkpoint", report.unused)):
        if keys:
            console.print(f"  {title}: {', '.join(keys)}")
    console.print(f"  loaded unchanged: {len(report.loaded)} tensors (all others)")
    run_fit(None, [], resume=resume, device=device, export=export, recipe=resolved, model=net, data=prepared,
            overwrite=overwrite)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
