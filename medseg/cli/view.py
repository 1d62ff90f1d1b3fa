"""``medseg view``: a self-contained HTML viewer of a scan with its label maps (works offline)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def view(
    scan: Annotated[Path, typer.Argument(help="The scan (any format medseg reads).")],
    labels: Annotated[list[Path] | None, typer.Argument(
        help="Label maps on the scan's grid (e.g. CASE_seg.nii.gz).")] = None,
    reference: Annotated[Path | None, typer.Option(
        "--reference", "-r", help="Reference label map: colours each label map's false positives and false "
        "negatives against it.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The page (.html). Default: CASE_view.html next to the scan.")] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")] = False,
    model: Annotated[str | None, typer.Option(
        "--model", help="Label names from this model's card, e.g. stunet_t.")] = None,
    dataset_json: Annotated[Path | None, typer.Option(
        "--dataset-json", help="Label names from this dataset.json.")] = None,
    neurological: Annotated[bool, typer.Option(
        "--neurological", help="Show the patient's right on the right (default: radiological, right on the "
        "left).")] = False,
) -> None:
    """Write an interactive page: axial, coronal and sagittal slices in physical space, a 3D view, window
    presets (CT soft tissue, lung, bone; auto for MR), label overlays with names and colours, opacity, and
    false positives/negatives against a reference. One HTML file, no network needed.

    Label names come from --model/--dataset-json, else from the label maps themselves (medseg's and
    TotalSegmentator's NIfTI files carry them). Scans over 16 M voxels are shown at a coarser grid.

    Examples:
      medseg view ct.nii.gz ct_seg.nii.gz
      medseg view ct.nii.gz ct_seg.nii.gz --reference gt.nii.gz -o case1.html --open
      medseg view mr.nii.gz seg_a.nii.gz seg_b.nii.gz --model stunet_t
    """
    from rich.console import Console

    from medseg.viewer import write_viewer
    from medseg.viewer.cli_support import label_names, open_in_browser, output_path

    page = output_path(scan, output)
    names = label_names(model, dataset_json)
    written = write_viewer(scan, labels or [], reference=reference, output=page, names=names,
                           convention="neurological" if neurological else "radiological")
    Console(stderr=True).print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
    if open_page:
        open_in_browser(written)


def register(app: typer.Typer) -> None:
    app.command("view")(view)
