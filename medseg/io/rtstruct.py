"""RT Structure Set (RTSTRUCT) objects, written with pydicom directly: label map -> contours -> label map.

Why pydicom and not ``rt-utils``: rt-utils pulls in opencv-python (a ~60 MB wheel) and the ``dataclasses``
backport for one job, contour tracing, which scikit-image (already a medseg dependency) does; and the
RTSTRUCT modules are a handful of sequences that pydicom writes plainly. highdicom does not write RTSTRUCT.

Contours: for each label and slice, marching squares (``skimage.measure.find_contours`` at level 0.5 on
the padded mask) gives closed polygons between foreground and background pixel centres; each becomes a
CLOSED_PLANAR contour in patient coordinates (LPS mm) on that slice's source image. Holes are separate
contours inside their outer one; readers fill with the even-odd rule (as 3D Slicer, Eclipse and this
module do), which leaves holes empty. Each ROI has its name, the label's display colour and a coded
identification (SNOMED CT via :mod:`medseg.io.dicom_codes`), and ``medseg label value N`` as description.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

import medseg
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io.dicom_codes import segment_code
from medseg.io.dicom_seg import Algorithm, save_dicom_object
from medseg.io.dicom_source import SourceSeries

logger = get_logger(__name__)

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"  # RT Structure Set Storage
_VALUE_NOTE = re.compile(r"medseg label value (\d+)")
_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
           "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription")


def _ds(value: float) -> str:
    from medseg.io.dicom import _ds as decimal_string

    return decimal_string(value)


def slice_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Closed polygons (N, 2) of (row, column) around the foreground of a 2D (rows, columns) mask."""
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    polygons = []
    for contour in find_contours(padded, 0.5):
        points = contour[:-1] - 1.0 if np.allclose(contour[0], contour[-1]) else contour - 1.0
        if len(points) >= 3:
            polygons.append(points)
    return polygons


def rasterise(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Fill (row, column) polygons with the even-odd rule (a contour inside another is a hole)."""
    from skimage.draw import polygon as fill

    mask = np.zeros(shape, dtype=bool)
    for points in polygons:
        rr, cc = fill(points[:, 0], points[:, 1], shape)
        layer = np.zeros(shape, dtype=bool)
        layer[rr, cc] = True
        mask ^= layer
    return mask


def build_rtstruct(labels: np.ndarray, series: SourceSeries, names, algorithm: Algorithm, path: Path):
    """The RTSTRUCT dataset for a (x, y, z) label map on ``series``' grid."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    present = [int(v) for v in np.unique(labels) if v != 0]
    if not present:
        raise MedsegError("the label map is empty; an RTSTRUCT needs at least one structure", path=path,
                          hint="write NIfTI for empty results, or check the input")
    first = series.datasets[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(RTSTRUCT_SOP_CLASS)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SpecificCharacterSet = first.get("SpecificCharacterSet", "ISO_IR 192") or "ISO_IR 192"
    for key in _COPIED:
        setattr(ds, key, first.get(key, ""))
    now = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = now
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1000 + int(first.get("SeriesNumber") or 0)
    ds.SeriesDescription = f"medseg {algorithm.model}"[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "medseg"
    ds.ManufacturerModelName = algorithm.model[:64]
    ds.SoftwareVersions = f"medseg {medseg.__version__}"
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "")
    ds.StructureSetLabel = "MEDSEG"
    ds.StructureSetName = algorithm.model[:64]
    ds.StructureSetDate, ds.StructureSetTime = now
    ds.StructureSetDescription = (f"model {algorithm.model}; weights sha256 {algorithm.weights_sha256 or 'n/a'}")[:1024]

    images = []
    for image in series.datasets:
        item = Dataset()
        item.ReferencedSOPClassUID = image.SOPClassUID
        item.ReferencedSOPInstanceUID = image.SOPInstanceUID
        images.append(item)
    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = series.series_uid
    referenced_series.ContourImageSequence = images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Study Management (as RT systems expect)
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = [referenced_series]
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]

    rois, contours, observations = [], [], []
    for number, value in enumerate(present, start=1):
        name = str(names[value]) if value < len(names) else f"label_{value}"
        code = segment_code(name, value, algorithm.model)
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = name[:64]
        roi.ROIDescription = f"medseg label value {value}"
        roi.ROIGenerationAlgorithm = "AUTOMATIC" if algorithm.automatic else "MANUAL"
        rois.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = list(code.color)
        roi_contour.ContourSequence = _contours(labels == value, series, images)
        contours.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.RTROIInterpretedType = "ORGAN" if code.known and code.category[0] == "91723000" else ""
        observation.ROIInterpreter = ""
        identification = Dataset()
        identification.CodeValue, identification.CodingSchemeDesignator, identification.CodeMeaning = code.type
        observation.RTROIIdentificationCodeSequence = [identification]
        observations.append(observation)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours
    ds.RTROIObservationsSequence = observations
    ds.ApprovalStatus = "UNAPPROVED"
    pydicom.dataset.validate_file_meta(ds.file_meta, enforce_standard=True)
    return ds


def _contours(mask: np.ndarray, series: SourceSeries, images: list) -> list:
    from pydicom.dataset import Dataset

    out = []
    for k in range(mask.shape[2]):
        plane = mask[:, :, k].T  # (rows, columns)
        if not plane.any():
            continue
        for polygon in slice_contours(plane):
            points = series.pixel_to_world(polygon[:, 0], polygon[:, 1], k)
            contour = Dataset()
            contour.ContourImageSequence = [images[k]]
            contour.ContourGeometricType = "CLOSED_PLANAR"
            contour.NumberOfContourPoints = len(points)
            contour.ContourData = [_ds(v) for v in points.ravel()]
            out.append(contour)
    return out


def write_rtstruct(labels: np.ndarray, affine: np.ndarray, series: SourceSeries, path: str | Path,
                   names, algorithm: Algorithm | None = None) -> Path:
    """Write a (x, y[, z]) label map predicted on ``series`` as an RTSTRUCT file at ``path`` (atomically)."""
    return save_dicom_object(build_rtstruct, labels, affine, series, path, names, algorithm)


def read_rtstruct(path: Path, series: SourceSeries) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels (x, y, z), RAS affine, extra meta): every ROI rasterised on ``series``' grid (even-odd fill).

    ROIs become label values from their ``medseg label value N`` description, else 1, 2, ... in ROI order;
    where ROIs overlap the later one wins (logged).
    """
    import pydicom

    ds = pydicom.dcmread(str(path))
    uid_to_k = {str(d.SOPInstanceUID): k for k, d in enumerate(series.datasets)}
    normal = np.cross(series.row_dir, series.col_dir)
    heights = series.positions @ normal
    rows, columns, slices = series.shape[1], series.shape[0], series.shape[2]
    rois = list(ds.get("StructureSetROISequence", []))
    values: dict[int, int] = {}
    names: dict[int, str] = {}
    for order, roi in enumerate(rois, start=1):
        match = _VALUE_NOTE.fullmatch(str(roi.get("ROIDescription", "")))
        values[int(roi.ROINumber)] = int(match.group(1)) if match else order
    if len(set(values.values())) != len(values):
        values = {int(roi.ROINumber): order for order, roi in enumerate(rois, start=1)}
    top = max(values.values(), default=0)
    labels = np.zeros((columns, rows, slices), dtype=np.uint8 if top < 256 else np.uint16)
    overlap = 0
    for roi_contour in ds.get("ROIContourSequence", []):
        number = int(roi_contour.ReferencedROINumber)
        value = values.get(number)
        if value is None:
            continue
        names[value] = next((str(r.ROIName) for r in rois if int(r.ROINumber) == number), str(value))
        per_slice: dict[int, list[np.ndarray]] = {}
        for contour in roi_contour.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "")) not in ("CLOSED_PLANAR", ""):
                continue
            points = np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)
            k = _slice_of(contour, points, uid_to_k, heights, normal, path)
            per_slice.setdefault(k, []).append(series.world_to_pixel(points, k))
        for k, polygons in per_slice.items():
            mask = rasterise(polygons, (rows, columns)).T
            overlap += int(np.count_nonzero(mask & (labels[:, :, k] > 0)))
            labels[:, :, k][mask] = value
    if overlap:
        logger.warning("%s: %d voxels lie in more than one ROI; the later ROI's label is kept", path, overlap)
    return labels, series.affine, {"label_names": names, "dicom_object": "RTSTRUCT"}


def _slice_of(contour, points, uid_to_k, heights, normal, path) -> int:
    images = contour.get("ContourImageSequence", [])
    if images and str(images[0].ReferencedSOPInstanceUID) in uid_to_k:
        return uid_to_k[str(images[0].ReferencedSOPInstanceUID)]
    height = float(points[0] @ normal)
    k = int(np.argmin(np.abs(heights - height)))
    gap = np.abs(np.diff(heights)).min() if len(heights) > 1 else 1.0
    if abs(heights[k] - height) > 0.5 * gap:
        raise MedsegError(f"a contour lies {height:.4g} mm along the slice normal, between or outside the "
                          "source slices", path=path, hint="give the series the structure set was drawn on")
    return k
