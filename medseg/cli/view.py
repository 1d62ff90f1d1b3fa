"""``medseg view``: a self-contained HTML viewer of a scan with its label maps (works offline)."""
from __future__ import annotations

from pathlib import Path

import typer


def view(
    scan: Path = typer.Argument(..., help="The scan (any format medseg reads)."),
    labels: list[Path] = typer.Argument(None, help="Label maps on the scan's grid (e.g. CASE_seg.nii.gz)."),
    reference: Path | None = typer.Option(None, "--reference", "-r", help="Reference label map: colours each "
                                          "label map's false positives and false negatives against it."),
    output: Path | None = typer.Option(None, "--output", "-o", help="The page (.html). Default: CASE_view.html "
                                       "next to the scan."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    model: str | None = typer.Option(None, "--model", help="Label names from this model's card, e.g. stunet_t."),
    dataset_json: Path | None = typer.Option(None, "--dataset-json", help="Label names from this dataset.json."),
    neurological: bool = typer.Option(False, "--neurological", help="Show the patient's right on the right "
                                      "(default: radiological, right on the left)."),
) -> None:
    """Write an interactive page: axial, coronal and sagittal slices in physical space, a 3D view, window
    presets (CT soft tissue, lung, bone; auto for MR), label overlays with names and colours, opacity, and
    false positives/negatives against a reference. One HTML file, no network needed.

    Label names come from --model/--dataset-json, else from the label maps themselves (medseg's and
    TotalSegmentator's NIfTI files carry them). Scans over 24 M voxels are shown at a coarser grid.

    Examples:
      medseg view ct.nii.gz ct_seg.nii.gz
      medseg view ct.nii.gz ct_seg.nii.gz --reference gt.nii.gz -o case1.html --open
      medseg view mr.nii.gz seg_a.nii.gz seg_b.nii.gz --model stunet_t
    """
    from rich.console import Console

    from medseg.viewer.cli_support import label_names, open_in_browser, output_path
    from medseg.viewer import write_viewer

    page = output_path(scan, output)
    names = label_names(model, dataset_json)
    written = write_viewer(scan, labels or [], reference=reference, output=page, names=names,
                           convention="neurological" if neurological else "radiological")
    Console(stderr=True).print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")
    if open_page:
        open_in_browser(written)


def register(app: typer.Typer) -> None:
    app.command("view")(view)
