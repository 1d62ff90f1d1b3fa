"""``medseg evaluate``: Dice and surface distances of predictions against references, with reports."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

import typer


class Convention(str, Enum):
    monai = "monai"
    surface_distance = "surface-distance"


def evaluate(
    pred: Path = typer.Argument(..., help="Prediction label file, or folder of them."),
    ref: Path = typer.Argument(..., help="Reference label file, or folder (matched to PRED by case name)."),
    labels: str = typer.Option(None, "--labels", help="Labels to evaluate, as values or names: 1,2 or liver,spleen. "
                               "Default: every label found in any map."),
    tolerance: float = typer.Option(1.0, "--tolerance", help="NSD (surface Dice) tolerance in mm."),
    report: Path = typer.Option(None, "--report", help="Folder for metrics.csv, summary.json and report.html."),
    no_viewer: bool = typer.Option(False, "--no-viewer", help="Leave the interactive 3D viewer (about 2.3 MB) "
                                   "out of report.html."),
    json_file: Path = typer.Option(None, "--json", help="Write cases, summary and definitions as JSON ('-': stdout)."),
    convention: Convention = typer.Option(Convention.monai, "--convention",
                                          help="monai: MONAI's edge-voxel numbers; surface-distance: DeepMind's "
                                          "surfel-area weighted numbers."),
    resample: bool = typer.Option(False, "--resample-to-reference",
                                  help="Resample predictions on another voxel grid onto the reference "
                                  "(nearest neighbour) instead of stopping with an error."),
    spacing: str = typer.Option(None, "--spacing", help="Voxel size in mm for every map, overriding the files' "
                                "(PNG/JPEG store none: 1 per pixel), e.g. 0.14,0.14 for 2D or 1,1,3 for 3D."),
    threshold: float = typer.Option(None, "--threshold", help="Binarise float (probability) maps: >= T is label 1."),
    dataset_json: Path = typer.Option(None, "--dataset-json", help="Label names from this dataset.json."),
    model: str = typer.Option(None, "--model", help="Label names from this model's card, e.g. stunet_t."),
    workers: int = typer.Option(min(4, os.cpu_count() or 1), "--workers", "-j", min=1,
                                help="Parallel processes over cases."),
) -> None:
    """Score predictions against references: Dice, IoU, precision, sensitivity, volumes, Hausdorff, HD95,
    ASSD, directed mean surface distances and NSD, per case and label, with a summary per label.

    Both empty gives Dice 1 and distance 0; exactly one empty gives Dice 0 and an infinite distance (null in
    JSON), left out of distance statistics and counted.

    Examples:
      medseg evaluate preds/ labelsTr/ --dataset-json dataset.json --report report/
      medseg evaluate seg.nii.gz gt.nii.gz --labels 1,2 --tolerance 2 --json metrics.json
      medseg evaluate preds/ labels/ --model stunet_t --convention surface-distance -j 8
      medseg evaluate probs/ labels/ --threshold 0.5 --resample-to-reference
      medseg evaluate preds/ labels/ --json m.json    # + how well the predictions' quality estimates matched
      medseg evaluate xray_preds/ xray_masks/ --spacing 0.14,0.14     # PNG masks: distances in mm, not pixels
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from medseg.core.errors import MedsegError
    from medseg.reports import evaluate as run_evaluation

    voxel = None
    if spacing is not None:
        try:
            voxel = tuple(float(v) for v in spacing.split(","))
        except ValueError:
            raise MedsegError(f"--spacing takes numbers separated by commas, got {spacing!r}",
                              hint="e.g. --spacing 0.14,0.14") from None
    _check_outputs(pred, ref, dataset_json, json_file, report)
    if dataset_json is not None and model is not None:
        raise MedsegError("give label names with --dataset-json or with --model, not both")
    names = None
    if dataset_json is not None:
        names = dataset_json
    elif model is not None:
        from medseg.models import get_card
        from medseg.reports.labels import names_from_card_labels

        names = names_from_card_labels(get_card(model).labels)

    err = Console(stderr=True)
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, case: str) -> None:
            bar.update(task, completed=done, total=total, description=case)

        result = run_evaluation(pred, ref, labels=labels, label_names=names, tolerance=tolerance,
                                convention=convention.value, resample_to_reference=resample, threshold=threshold, spacing=voxel,
                                workers=workers, progress=progress)
    from medseg.quality.report import attach_quality, describe

    quality = attach_quality(result)   # predictions whose sidecars carry quality estimates (medseg predict)
    if json_file is not None and str(json_file) == "-":
        import json

        typer.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return
    _print_summary(result, Console())
    if quality is not None:
        Console().print(describe(quality), highlight=False)
    if json_file is not None:
        err.print(f"wrote {result.write_json(json_file)}")
    if report is not None:
        err.print(f"wrote {result.write_report(report, viewer=not no_viewer)} (with metrics.csv and summary.json)")


def _check_outputs(pred: Path, ref: Path, dataset_json: Path | None, json_file: Path | None,
                   report: Path | None) -> None:
    """Before evaluating: --json/--report are writable paths and never land on an input."""
    from medseg.core.paths import (
        check_output_file,
        check_output_folder,
        files_in,
        refuse_writing_inputs,
    )

    inputs = [*files_in(pred), *files_in(ref)] + ([dataset_json] if dataset_json else [])
    if json_file is not None and str(json_file) != "-":
        check_output_file(json_file, option="--json")
        refuse_writing_inputs([json_file], inputs, option="--json")
    if report is not None:
        check_output_folder(report, option="--report")
        refuse_writing_inputs([report / n for n in ("metrics.csv", "summary.json", "report.html")], inputs,
                              option="--report")


def _print_summary(result, console) -> None:
    from rich import box
    from rich.table import Table

    s = result.summary
    from medseg.reports.labels import plural

    table = Table(title=f"{plural(s['n_cases'], 'case')} · {s['convention']} convention", title_justify="left",
                  caption=f"means over cases (HD95: median, mm; ASSD: mm); NSD at {s['tolerance_mm']:g} mm; "
                  "missed/extra: cases with an empty prediction/reference", caption_justify="left",
                  box=box.SIMPLE_HEAD)
    for column in ("label", "n", "Dice", "± sd", "HD95", "ASSD", "NSD", "missed", "extra"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for value, block in s["labels"].items():
        m = block["metrics"]
        table.add_row(
            f"{value} {block['name']}", str(block["n_cases"]), _f(m["dice"]["mean"], 3), _f(m["dice"]["std"], 3),
            _f(m["hd95"]["median"], 2), _f(m["assd"]["mean"], 2), _f(m["nsd"]["mean"], 3),
            str(block["n_only_prediction_empty"]), str(block["n_only_reference_empty"]),
        )
    console.print(table)
    for value, name in s.get("requested_labels_not_found", {}).items():
        console.print(f"label {value} ({name}): in no prediction and no reference, not scored")


def _f(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
