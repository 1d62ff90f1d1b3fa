"""DICOM Segmentation objects (DICOM-SEG) through highdicom: write a label map, read one back.

Written objects are BINARY segmentations (1 bit per voxel, frames without any foreground omitted): the
type every DICOM-SEG reader handles (3D Slicer/dcmqi, OHIF, PACS) and the one ``dciodvfy`` of the
Debian dicom3tools package (2022) knows; LABELMAP (2024) is not yet read by those. Each label present
becomes one segment with its name, a SNOMED CT category/type from :mod:`medseg.io.dicom_codes`, a
recommended display colour, algorithm identification (model name, medseg version, weights sha256) and the
description ``medseg label value N`` so the original label values come back on reading. Labels with no
voxel are left out (logged). Frames reference their source images, series and frame of reference.

Reading returns the labels on the source series' grid when that series is found (see
:func:`medseg.io.dicom_objects.find_source_folder`), else on the grid the frames span.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import medseg
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io.dicom_codes import segment_code
from medseg.io.dicom_source import SourceSeries, check_grid
from medseg.io.geometry import LPS_TO_RAS

logger = get_logger(__name__)

SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # binary/fractional, labelmap
_VALUE_NOTE = re.compile(r"medseg label value (\d+)")


@dataclass(frozen=True)
class Algorithm:
    """Who made the segmentation: recorded in every segment's algorithm identification."""

    model: str = "manual"
    weights_sha256: str | None = None
    automatic: bool = True


def _code(values):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=values[0], scheme_designator=values[1], meaning=values[2])


def _cielab(rgb) -> Any:
    from highdicom.color import CIELabColor
    from skimage.color import rgb2lab

    lab = rgb2lab(np.asarray(rgb, dtype=np.float64).reshape(1, 1, 3) / 255.0)[0, 0]
    return CIELabColor(float(np.clip(lab[0], 0, 100)), float(np.clip(lab[1], -128, 127)),
                       float(np.clip(lab[2], -128, 127)))


def build_dicom_seg(labels: np.ndarray, series: SourceSeries, names, algorithm: Algorithm, path: Path):
    """The highdicom Segmentation dataset for a (x, y, z) label map on ``series``' grid."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    present = [int(v) for v in np.unique(labels) if v != 0]
    empty = [names[v] if v < len(names) else str(v) for v in range(1, len(names)) if v not in present]
    if empty:
        logger.info("%s: %d label(s) with no voxel left out of the DICOM-SEG: %s", path, len(empty),
                    ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))
    if not present:
        raise MedsegError("the label map is empty; a DICOM-SEG needs at least one segment", path=path,
                          hint="write NIfTI for empty results, or check the input")
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint8 if len(present) < 256 else np.uint16)
    lookup[present] = np.arange(1, len(present) + 1)
    frames = np.ascontiguousarray(np.transpose(lookup[labels], (2, 1, 0)))  # (slices, rows, columns)
    family = codes.cid7162.ArtificialIntelligence if algorithm.automatic else codes.cid7162.ManualProcessing
    parameters = {"medseg": medseg.__version__}
    if algorithm.weights_sha256:
        parameters["weights_sha256"] = algorithm.weights_sha256
    ident = hd.AlgorithmIdentificationSequence(name=algorithm.model[:64], family=family,
                                               version=medseg.__version__, source="medseg",
                                               parameters=parameters)
    descriptions = []
    for number, value in enumerate(present, start=1):
        name = str(names[value]) if value < len(names) else f"label_{value}"
        code = segment_code(name, value, algorithm.model)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name[:64], segmented_property_category=_code(code.category),
            segmented_property_type=_code(code.type),
            algorithm_type="AUTOMATIC" if algorithm.automatic else "MANUAL",
            algorithm_identification=ident, display_color=_cielab(code.color)))
    first = series.datasets[0]
    seg = hd.seg.Segmentation(
        source_images=series.datasets, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=_series_number(first),
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="medseg",
        manufacturer_model_name=algorithm.model[:64], software_versions=f"medseg {medseg.__version__}",
        device_serial_number="none", content_label="MEDSEG", content_description=f"{algorithm.model}"[:64],
        series_description=f"medseg {algorithm.model}"[:64], omit_empty_frames=True,
    )
    for item, value in zip(seg.SegmentSequence, present, strict=True):
        item.SegmentDescription = f"medseg label value {value}"
        code = segment_code(str(names[value]) if value < len(names) else "", value, algorithm.model)
        if code.modifier is not None:
            from pydicom.dataset import Dataset

            modifier = Dataset()
            modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = code.modifier
            item.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    return seg


def _series_number(source) -> int:
    try:
        return min(int(source.get("SeriesNumber") or 0) + 1000, 2**31 - 1)
    except (TypeError, ValueError):
        return 1000


def save_dicom_object(build, labels: np.ndarray, affine: np.ndarray, series: SourceSeries, path: str | Path,
                      names, algorithm: Algorithm | None = None) -> Path:
    """Check ``labels`` against ``series``' grid, build the dataset with ``build`` and save it atomically.

    One write path for DICOM-SEG and RTSTRUCT: same grid check, same temp-file-then-rename.
    """
    from medseg.core.atomic import atomic_path

    path = Path(path)
    grid = check_grid(series, np.asarray(labels), affine, path)
    dataset = build(grid, series, list(names), algorithm or Algorithm(), path)
    with atomic_path(path) as temp:
        dataset.save_as(temp, enforce_file_format=True)
    return path


def write_dicom_seg(labels: np.ndarray, affine: np.ndarray, series: SourceSeries, path: str | Path,
                    names, algorithm: Algorithm | None = None) -> Path:
    """Write a (x, y[, z]) label map predicted on ``series`` as a DICOM-SEG file at ``path`` (atomically)."""
    return save_dicom_object(build_dicom_seg, labels, affine, series, path, names, algorithm)


def read_dicom_seg(path: Path, series: SourceSeries | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels (x, y, z), RAS affine, extra meta) of a DICOM-SEG, on ``series``' grid when given."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    numbers = [int(n) for n in seg.get_segment_numbers()]
    values, names = {}, {}
    for number in numbers:
        item = seg.get_segment_description(number)
        match = _VALUE_NOTE.fullmatch(str(item.get("SegmentDescription", "")))
        values[number] = int(match.group(1)) if match else number
        names[values[number]] = str(item.SegmentLabel)
    if len(set(values.values())) != len(values):
        values = {n: n for n in numbers}
    try:
        if series is not None:
            uids = [str(ds.SOPInstanceUID) for ds in series.datasets]
            frames = seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False,
                                                       assert_missing_frames_are_empty=False)
            affine = series.affine
        else:
            volume = seg.get_volume(combine_segments=True, relabel=False)
            frames, affine = np.asarray(volume.array), _ras_affine(volume.affine)
            logger.warning("%s: source series not found; the labels span only the DICOM-SEG's own frames", path)
    except (ValueError, RuntimeError) as exc:
        raise MedsegError(f"cannot place this DICOM-SEG's frames on a voxel grid ({exc})", path=path,
                          hint="segments may overlap or frames may not form a regular volume; "
                          "read it with highdicom directly") from None
    top = max(values.values())
    lookup = np.zeros(max(numbers) + 1, dtype=np.uint8 if top < 256 else np.uint16)
    for number, value in values.items():
        lookup[number] = value
    array = np.ascontiguousarray(np.transpose(lookup[frames], (2, 1, 0)))
    return array, affine, {"label_names": names, "dicom_object": "SEG"}


def _ras_affine(lps_affine: np.ndarray) -> np.ndarray:
    """highdicom's Volume affine (index (slice, row, column) -> LPS) as medseg's (x=column, y=row, z=slice) RAS."""
    a = np.asarray(lps_affine, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = LPS_TO_RAS @ a[:3, [2, 1, 0]]
    out[:3, 3] = LPS_TO_RAS @ a[:3, 3]
    return out
