"""The CLI's entry points into :mod:`medseg.nnunet` (kept here so ``medseg/cli/*.py`` stay thin)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from medseg.core.errors import MedsegError


def is_nnunet_model(ref: str | None) -> bool:
    """True when ``--model`` names a folder on disk or a folder imported with ``models import-folder``."""
    if not ref:
        return False
    if Path(ref).is_dir():
        return True
    from medseg.nnunet.registry import lookup

    return lookup(ref) is not None


def parse_folds(text: str | None) -> list[str] | None:
    """``"0,1,all"`` -> ``["0", "1", "all"]`` (None: every fold present)."""
    if text is None:
        return None
    folds = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in folds if not (f.isdigit() or f == "all")]
    if bad or not folds:
        raise MedsegError(f"invalid --folds {text!r}", hint="comma-separated fold numbers, e.g. 0,1,2 (or all)")
    return folds


def predict_command(model: str, inputs: Sequence[Path], output: Path | None, *, folds: str | None,
                    checkpoint_name: str | None, exact: bool, tta: bool | None, threads: int | None,
                    stats: bool = False, resume: bool = False, shard: str | None = None, backend: str = "auto",
                    precision: str = "auto", output_type: str = "multilabel", postprocess: bool = True,
                    unsupported: dict[str, object] | None = None, previous_stage: Path | None = None,
                    crop: str | None = None) -> int:
    """``medseg predict --model FOLDER`` through the batch path; returns the exit code (a single failed case
    raises its one-line error: exit 2). ``unsupported``: options given that folders do not honour (refused)."""
    from medseg.cli._predict_view import PredictProgress, print_summary
    from medseg.nnunet.run import predict_folder_model

    given = [name for name, value in (unsupported or {}).items() if value]
    if given:
        raise MedsegError(f"{', '.join(given)} not available for nnU-Net folders yet",
                          hint="drop them (folders use nnU-Net's step 0.5 and their postprocessing.json)")
    if output_type != "multilabel":
        raise MedsegError(f"--output-type {output_type} is not available for nnU-Net folders yet",
                          hint="drop --output-type (one multilabel file per case)")
    with PredictProgress() as view:
        summary, predictor = predict_folder_model(
            model, inputs, output, folds=parse_folds(folds), checkpoint_name=checkpoint_name, exact=exact,
            tta=tta, threads=threads, stats=stats, resume=resume, shard=shard,
            backend=backend, precision=precision, postprocess=postprocess, progress=view.update,
            previous_stage=previous_stage, crop=crop)
    single = summary.single_failure()
    if single is not None:
        raise single
    print_summary(summary, predictor)
    return summary.exit_code


def reject_nnunet_options(folds: str | None, checkpoint_name: str | None, exact: bool,
                          previous_stage: Path | None = None) -> None:
    """These options only mean something for nnU-Net folders."""
    used = [n for n, v in (("--folds", folds), ("--checkpoint-name", checkpoint_name), ("--exact", exact),
                           ("--previous-stage", previous_stage)) if v]
    if used:
        raise MedsegError(f"{', '.join(used)} apply to nnU-Net v2 result folders only",
                          hint="pass --model PATH/TO/Trainer__Plans__configuration (or a name from "
                               "`medseg models import-folder`)")


def show_card(ref: str, as_json: bool) -> bool:
    """``medseg models show`` for a folder path or an imported name; False when ``ref`` is neither."""
    from medseg.nnunet.registry import describe, lookup

    card = lookup(ref) if not Path(ref).is_dir() else describe(ref)
    if card is None:
        return False
    if as_json:
        import typer

        typer.echo(json.dumps(card, indent=1))
        return True
    from rich.console import Console
    from rich.table import Table

    table = Table(title=card.get("name", ref), show_header=False)
    for key in ("path", "dataset", "trainer", "plans", "configuration", "network", "channels", "modality",
                "spacing_zyx", "patch_size", "normalization", "checkpoint_name", "licence"):
        value = card.get(key)
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    table.add_row("labels", ", ".join(f"{k}:{v}" for k, v in card["labels"].items()))
    if card.get("regions"):
        table.add_row("regions", "; ".join("+".join(map(str, r)) for r in card["regions"]))
    for fold, info in card["folds"].items():
        table.add_row(f"fold {fold}", info["file"] + (f"  sha256 {info['sha256']}" if info.get("sha256") else ""))
    Console().print(table)
    return True


def import_command(path: Path, name: str | None, checkpoint_name: str | None, weights_dir: Path | None) -> None:
    """``medseg models import-folder``."""
    import typer

    from medseg.nnunet.folder import DEFAULT_CHECKPOINT
    from medseg.nnunet.registry import import_folder

    name, target, card = import_folder(path, name, checkpoint_name or DEFAULT_CHECKPOINT, weights_dir)
    typer.echo(f"imported {path} as {name} ({card['configuration']}, folds {', '.join(card['folds'])}) -> {target}")
