"""``medseg info``: shape, spacing, orientation and intensity summary of a scan."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def info(
    scan: Annotated[Path, typer.Argument(help="Image file or DICOM series folder.")],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object instead of a table."),
    ] = False,
    frame: Annotated[
        int | None,
        typer.Option("--frame", help="For 4D files: the frame/channel to describe."),
    ] = None,
    series: Annotated[
        str | None,
        typer.Option("--series", help="For DICOM folders with several series: the UID."),
    ] = None,
    header_only: Annotated[
        bool,
        typer.Option("--header-only", help="Read only the header (NIfTI, NRRD, MetaImage): no voxel data, "
                     "no min/max/labels."),
    ] = False,
) -> None:
    """Describe a scan: shape, spacing, orientation, affine, dtype, intensity range, labels.

    The affine is the 4x4 voxel-to-world matrix in RAS+ mm (nibabel's convention), for every format.

    "labels" appears when the scan looks like a label map (integer, non-negative, spatially coherent).

    NaN/inf voxels are counted ("non_finite") and reported as a warning.

    The header's claimed size is checked against the file and the free memory before any voxel is read.

    Examples:
      medseg info scan.nii.gz
      medseg info scan.nii.gz --json
      medseg info huge.nii.gz --header-only
      medseg info dicom_folder/ --series 1.2.840.113619...
    """
    from medseg.io.summary import describe

    summary = describe(scan, frame=frame, series=series, header_only=header_only)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(scan), show_header=False)
    for key, value in summary.items():
        if key == "affine":
            value = "\n".join("  ".join(f"{v: .4f}" for v in row) for row in value)
        table.add_row(key, str(value))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
