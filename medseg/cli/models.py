"""``medseg models``: list and describe the zoo, import downloaded weights, hash files."""
from __future__ import annotations

import json
from pathlib import Path

import typer

models_app = typer.Typer(
    help="The model zoo: list models, show a model card, import pretrained weights.\n\n"
    "Example: medseg models show stunet_b",
    no_args_is_help=True,
)


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


@models_app.command("list")
def list_cmd(
    pattern: str = typer.Argument("*", help="Glob on model names, e.g. 'stunet*'."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List registered models: dims, channels, activation, parameters, pretrained tags (a table on a
    terminal, plain aligned columns in a pipe).

    Examples:
      medseg models list
      medseg models list 'swin*' --json
    """
    from medseg.cli._model_index import read_index

    rows = read_index(pattern)  # a shipped JSON index: no torch, well under a second
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    import sys

    from rich import box
    from rich.console import Console
    from rich.table import Table

    columns = ("name", "dims", "in", "out", "activation", "params", "pretrained")
    cells = [(r["name"], f"{r['dims']}D", str(r["in_channels"]), str(r["out_channels"]), r["activation"],
              _fmt_params(r["params"]), ", ".join(r["pretrained"]) or "-") for r in rows]
    if not sys.stdout.isatty():  # a pipe or a file: plain aligned columns, nothing cut
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        for row in [columns, *cells]:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        return
    table = Table(title="medseg models", box=box.SIMPLE_HEAD, show_edge=False)
    longest = max((len(r["name"]) for r in rows), default=4)
    for column in columns:
        table.add_column(column, justify="right" if column in ("dims", "in", "out", "params") else "left",
                         no_wrap=column == "name", min_width=longest if column == "name" else len(column),
                         overflow="fold")  # names are never cut; pretrained tags wrap
    for row in cells:
        table.add_row(*row)
    Console().print(table)


@models_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Model name, optionally NAME.TAG for a pretrained entry."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole card as JSON."),
) -> None:
    """Show a model card: inputs, outputs, labels, ROI, spacing, intensity, weights and options.

    Examples:
      medseg models show stunet_b
      medseg models show swin_unetr_brats.fold0 --json
    """
    from medseg.cli._model_index import card_view, read_card
    from medseg.nnunet.cli import show_card

    if show_card(name, as_json):
        return
    info = read_card(name) or card_view(name)  # the shipped zoo from a JSON file (no torch); others built
    if as_json:
        typer.echo(json.dumps(info, indent=1, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=name, show_header=False)
    table.add_row("params", f"{info['params']:,}" if info["params"] is not None else "? (optional dependency missing)")
    for key in ("description", "spatial_dims", "in_channels", "channel_names", "out_channels", "activation",
                "roi_size", "spacing", "intensity", "divisible_by", "deep_supervision", "slice_axis",
                "modality", "reference"):
        value = info[key]
        if key == "slice_axis" and info["spatial_dims"] == 3:
            continue
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    labels = info["labels"]
    table.add_row("labels", ", ".join(f"{i}:{n}" for i, n in enumerate(labels[:12]))
                  + (f" ... ({len(labels)} total)" if len(labels) > 12 else ""))
    table.add_row("builder options", ", ".join(f"{k}={v}" for k, v in info["builder_options"].items()) or "-")
    for entry in info["pretrained"]:
        sha = entry.get("sha256") or "not published (pinned at import)"
        text = f"file {entry['file']}; sha256 {sha}; licence {entry.get('license')}; data {entry.get('data')}"
        if entry.get("metrics"):
            text += "; " + ", ".join(f"{k}={v}" for k, v in entry["metrics"].items())
        if entry.get("url"):
            text += f"; from {entry['url']}"
        if entry.get("note"):
            text += f"; {entry['note']}"
        table.add_row(f"weights '{entry['tag']}'", text)
    Console().print(table)


@models_app.command("import")
def import_cmd(
    name: str = typer.Argument(..., help="Model name, optionally NAME.TAG."),
    file: Path = typer.Argument(..., help="The downloaded weights file."),
    tag: str = typer.Option(None, "--tag", help="Pretrained tag (default: the one in NAME.TAG, else the first)."),
    weights_dir: Path = typer.Option(None, "--weights-dir", help="Destination (default ~/.cache/medseg/weights)."),
) -> None:
    """Check a downloaded weights file against the model card and copy it into the weights folder.

    Examples:
      medseg models import stunet_b ~/Downloads/base_ep4k.model
      medseg models import swin_unetr_brats --tag fold0 model.pt --weights-dir ./weights
    """
    from medseg.models.weights import import_weights

    dest, digest = import_weights(name, file, tag=tag, weights_dir=weights_dir)
    typer.echo(f"imported {file} -> {dest}\nsha256 {digest}")


@models_app.command("import-folder")
def import_folder_cmd(
    path: Path = typer.Argument(..., help="An nnU-Net v2 result folder (Trainer__Plans__configuration)."),
    name: str = typer.Option(None, "--name", help="Name to register it under (default: DATASET_configuration)."),
    checkpoint_name: str = typer.Option(None, "--checkpoint-name", help="Fold file (default checkpoint_final.pth)."),
    weights_dir: Path = typer.Option(None, "--weights-dir", help="Where the card goes (default ~/.cache/medseg/weights)."),
) -> None:
    """Register an nnU-Net v2 result folder: a card from dataset.json/plans.json, each fold's sha256 pinned.

    Examples:
      medseg models import-folder nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres --name hippo
      medseg predict scan.nii.gz --model hippo --exact
    """
    from medseg.nnunet.cli import import_command

    import_command(path, name, checkpoint_name, weights_dir)


@models_app.command("hash")
def hash_cmd(file: Path = typer.Argument(..., help="Any file.")) -> None:
    """Print a file's sha256 (what model cards pin).

    Examples:
      medseg models hash base_ep4k.model
    """
    from medseg.core.errors import MedsegError
    from medseg.core.hashing import sha256_file

    if not file.is_file():
        raise MedsegError("file not found", path=file)
    typer.echo(f"{sha256_file(file)}  {file}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
