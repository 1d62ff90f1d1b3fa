"""``medseg convert``: convert a scan between formats, keeping geometry and dtype."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def convert(
    source: Annotated[Path, typer.Argument(help="Image file or DICOM series folder to read.")],
    target: Annotated[str, typer.Argument(help="File to write (format from its extension), or a folder for DICOM.")],
    series: Annotated[
        str | None,
        typer.Option("--series", help="For DICOM folders with several series: the UID."),
    ] = None,
    frame: Annotated[
        int | None,
        typer.Option("--frame", help="For 4D files: keep only this frame/channel (0-based)."),
    ] = None,
    dicom_source: Annotated[
        Path | None,
        typer.Option("--dicom-source", help="TARGET NAME.dcm: the DICOM series folder the labels were made on; "
                     "writes a DICOM-SEG (or RTSTRUCT with --output-format rtstruct) referencing it."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--output-format", help="With --dicom-source: dicom-seg or rtstruct."),
    ] = "dicom-seg",
) -> None:
    """Convert between NIfTI, NRRD, MetaImage, DICOM series and PNG/TIFF, keeping geometry and dtype.

    The output format follows TARGET: .nii .nii.gz .nrrd .nhdr .mha .mhd .png .tif, or a DICOM series.

    A TARGET ending in / (or without extension) is written as a DICOM series folder, one file per slice.

    4D files keep all frames unless --frame picks one (DICOM and PNG need a single frame).

    A DICOM-SEG or RTSTRUCT SOURCE (.dcm) reads as a label map on its series' grid (the series folder is
    looked for next to it). Labels made on a DICOM series become a DICOM-SEG with TARGET NAME.dcm and
    --dicom-source SERIES_FOLDER.

    Examples:
      medseg convert scan.nii.gz scan.nrrd
      medseg convert dicom_folder/ scan.nii.gz
      medseg convert dicom_folder/ scan.nii.gz --series 1.2.840.113619.2.55...
      medseg convert scan.nii.gz dicom_out/
      medseg convert fmri.nii.gz volume0.mha --frame 0
      medseg convert seg.dcm seg.nii.gz                                  # DICOM-SEG/RTSTRUCT -> NIfTI
      medseg convert labels.nii.gz seg.dcm --dicom-source dicom_folder/   # -> DICOM-SEG
    """
    from medseg.core.paths import refuse_writing_inputs
    from medseg.io import read_array, write_image

    refuse_writing_inputs([target], [source], option="TARGET")
    if dicom_source is not None:
        from medseg.io.dicom_objects import labels_to_dicom_object

        info = labels_to_dicom_object(source, target, dicom_source, output_format=output_format, series_uid=series)
        typer.echo(f"wrote {target} ({info['format']}, {info['bytes']} bytes)")
        return

    image = read_array(source, frame=frame, series=series, allow_multichannel=True)
    written = write_image(image, target)
    shape = "x".join(str(s) for s in image.meta["spatial_shape"])
    channels = f", {image.array.shape[0]} channels" if image.array.shape[0] > 1 else ""
    typer.echo(f"wrote {written} ({shape}{channels}, {image.meta['original_dtype']})")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
