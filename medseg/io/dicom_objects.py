"""DICOM-SEG and RTSTRUCT as medseg outputs and inputs: pick the kind, find the source series, verify writes.

* :func:`write_dicom_labels` writes a label map predicted from a DICOM series folder as a DICOM-SEG or
  an RTSTRUCT, reads it back and checks it (SEG: every voxel; RTSTRUCT: Dice >= 0.95 per structure of
  more than :data:`MIN_VOXELS` voxels) before it appears under its final name.
* :func:`read_dicom_object` reads either kind as a label map; ``read_image`` calls it for ``.dcm`` files
  holding one, so ``medseg convert`` and ``medseg evaluate`` take them. The voxel grid is the source
  series', found next to the object (:func:`find_source_folder`) or given as ``source``.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io.dicom_source import SourceSeries, load_source_series, require_pydicom

logger = get_logger(__name__)

OUTPUT_FORMATS = ("dicom-seg", "rtstruct")
MIN_VOXELS = 10  # RTSTRUCT check: smaller structures are checked for presence only
_SOP_CLASSES = {b"1.2.840.10008.5.1.4.1.1.66.4": "SEG", b"1.2.840.10008.5.1.4.1.1.66.7": "SEG",
                b"1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT"}
_MAX_FOLDERS = 200
_MAX_READS = 20000  # file headers read while looking for a source series


def dicom_object_kind(path: str | PathLike) -> str | None:
    """``"SEG"`` or ``"RTSTRUCT"`` when the file's meta header names that SOP class, else None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if head[128:132] != b"DICM":
        return None
    end = head.find(b"\x02\x00\x10\x00", 132)  # the meta header's (0002,0010) follows (0002,0002)
    meta = head[132:end if end > 0 else len(head)]
    for uid, kind in _SOP_CLASSES.items():
        if uid + b"\x00" in meta or uid + b"\x02\x00" in meta:  # padded, or followed by the next (0002,xxxx) tag
            return kind
    return None


def referenced_series_uid(path: Path) -> str | None:
    """The SeriesInstanceUID a SEG or RTSTRUCT refers to."""
    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    for item in ds.get("ReferencedSeriesSequence", []):  # SEG
        return str(item.SeriesInstanceUID)
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):  # RTSTRUCT
        for study in frame.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                return str(series.SeriesInstanceUID)
    return None


def find_source_folder(path: Path, series_uid: str) -> Path | None:
    """A folder holding series ``series_uid``: the object's own folder or a sub-folder, a sibling folder or
    a sub-folder of one (e.g. ``patients/p1/`` for ``out/p1.dcm``); folders named like the file first."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    parent = path.resolve().parent
    candidates = [parent, *_subfolders(parent)]
    for sibling in _subfolders(parent.parent):
        candidates += [sibling, *_subfolders(sibling)]
    stem = path.name[: -len(".dcm")] if path.name.lower().endswith(".dcm") else path.stem
    candidates.sort(key=lambda p: p.name != stem)  # stable: the rest keep their order
    seen: set[Path] = set()
    budget = _MAX_READS
    for folder in candidates[:_MAX_FOLDERS]:
        if folder in seen:
            continue
        seen.add(folder)
        for child in sorted(folder.iterdir()):
            if not child.is_file() or child.resolve() == path.resolve():
                continue
            budget -= 1
            if budget < 0:
                return None
            try:
                uid = pydicom.dcmread(child, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            except (InvalidDicomError, OSError, ValueError, EOFError):  # not DICOM
                continue
            if str(uid.get("SeriesInstanceUID", "")) == series_uid:
                return folder
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _source_for(path: Path, source: str | PathLike | None, required: bool) -> SourceSeries | None:
    uid = referenced_series_uid(path)
    if uid is None:
        raise MedsegError("references no source series (no ReferencedSeriesSequence)", path=path,
                          hint="this object cannot be placed on a voxel grid; re-export it with references")
    folder = Path(source) if source is not None else find_source_folder(path, uid)
    if folder is None:
        if required:
            raise MedsegError(f"its source series {uid} was not found next to it (its folder, sub-folders or "
                              "sibling folders)", path=path,
                              hint="put the RTSTRUCT beside the series folder it was drawn on")
        return None
    return load_source_series(folder, uid)


def read_dicom_object(path: str | PathLike, kind: str | None = None, *,
                      source: str | PathLike | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels (x, y, z), RAS affine, extra meta) of a DICOM-SEG or RTSTRUCT file.

    ``source`` is the folder of the series it refers to (default: searched next to the file). A SEG
    without its series is read on the grid its frames span; an RTSTRUCT needs the series.
    """
    require_pydicom()
    p = Path(path)
    kind = kind or dicom_object_kind(p)
    if kind == "SEG":
        from medseg.io.dicom_seg import read_dicom_seg

        return read_dicom_seg(p, _source_for(p, source, required=False))
    if kind == "RTSTRUCT":
        from medseg.io.rtstruct import read_rtstruct

        series = _source_for(p, source, required=True)
        assert series is not None  # required=True raises instead
        return read_rtstruct(p, series)
    raise MedsegError("is neither a DICOM-SEG nor an RTSTRUCT file", path=p)


def output_kind(output_format: str) -> str:
    """``dicom-seg`` -> ``SEG``, ``rtstruct`` -> ``RTSTRUCT``."""
    if output_format not in OUTPUT_FORMATS:
        raise MedsegError(f"unknown DICOM output format {output_format!r}", hint=f"use {' or '.join(OUTPUT_FORMATS)}")
    return "SEG" if output_format == "dicom-seg" else "RTSTRUCT"


def write_dicom_labels(output_format: str, labels: np.ndarray, affine: np.ndarray, source: str | PathLike,
                       path: str | PathLike, names, *, model: str = "manual", weights_sha256: str | None = None,
                       series_uid: str | None = None) -> dict[str, Any]:
    """Write ``labels`` (x, y[, z]) predicted from DICOM folder ``source`` as DICOM-SEG or RTSTRUCT at ``path``.

    The object is written under a temporary name, read back and compared with ``labels``, then renamed
    into place. Returns ``{"path", "bytes", "format"}`` for the provenance sidecar.
    """
    from medseg.core.atomic import atomic_path
    from medseg.io.dicom_seg import Algorithm, build_dicom_seg, read_dicom_seg
    from medseg.io.dicom_source import check_grid
    from medseg.io.rtstruct import build_rtstruct, read_rtstruct

    require_pydicom()
    kind = output_kind(output_format)
    path = Path(path)
    series = load_source_series(Path(source), series_uid)
    grid = check_grid(series, np.asarray(labels), affine, path)
    algorithm = Algorithm(model=model, weights_sha256=weights_sha256)
    names = list(names)
    build = build_dicom_seg if kind == "SEG" else build_rtstruct
    dataset = build(grid, series, names, algorithm, path)
    with atomic_path(path) as temp:
        dataset.save_as(temp, enforce_file_format=True)
        back, _, _ = (read_dicom_seg if kind == "SEG" else read_rtstruct)(temp, series)
        _verify(kind, grid, back, path)
    return {"path": path.name, "bytes": path.stat().st_size, "format": output_format}


def _verify(kind: str, expected: np.ndarray, got: np.ndarray, path: Path) -> None:
    if kind == "SEG":
        if got.shape != expected.shape or not np.array_equal(got, expected):
            raise MedsegError("the written DICOM-SEG does not read back as the prediction", path=path,
                              hint="this is a bug; write .nii.gz meanwhile")
        return
    for value in (int(v) for v in np.unique(expected) if v != 0):
        truth, back = expected == value, got == value
        size = int(truth.sum())
        dice = 2.0 * float(np.count_nonzero(truth & back)) / (size + int(back.sum()))
        if (size > MIN_VOXELS and dice < 0.95) or not back.any():
            raise MedsegError(f"the written RTSTRUCT's contours of label {value} rasterise to Dice {dice:.3f}",
                              path=path, hint="this is a bug; write DICOM-SEG or .nii.gz meanwhile")


def labels_to_dicom_object(labels_path: str | PathLike, target: str | PathLike, source: str | PathLike, *,
                           output_format: str = "dicom-seg", series_uid: str | None = None) -> dict[str, Any]:
    """Write a label file (NIfTI, NRRD, another SEG...) made on DICOM series ``source`` as DICOM-SEG/RTSTRUCT.

    Label names come from the file when it carries them (medseg's NIfTI JSON extension, a SEG's segment
    labels), else ``label_N``. The label grid must be the series' own (a MedsegError otherwise).
    """
    from medseg.io.readers import read_image
    from medseg.reports.loading import to_label_array

    image = read_image(labels_path)
    if image.shape[0] != 1:
        raise MedsegError(f"has {image.shape[0]} channels; a label map has one", path=labels_path)
    labels = to_label_array(np.asarray(image[0].numpy()), labels_path, None)
    given = dict(image.meta.get("label_names") or _nifti_label_names(Path(labels_path)))
    top = int(labels.max()) if labels.size else 0
    names = ["background", *(str(given.get(v, given.get(str(v), f"label_{v}"))) for v in range(1, top + 1))]
    return write_dicom_labels(output_format, labels, np.asarray(image.affine, dtype=np.float64), source, target,
                              names, model="converted", series_uid=series_uid)


def _nifti_label_names(path: Path) -> dict:
    """Label names from the JSON header extension medseg writes into NIfTI label maps ({} if none)."""
    import json

    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return {}
    try:
        import nibabel as nib

        for extension in getattr(nib.load(str(path)).header, "extensions", ()):
            content = json.loads(extension.get_content())
            if isinstance(content, dict) and isinstance(content.get("labels"), dict):
                return content["labels"]
    except (ValueError, OSError, TypeError):
        return {}
    return {}
