"""The source DICOM series a segmentation object refers to: its headers in medseg's slice order and its grid.

DICOM-SEG frames and RTSTRUCT contours are tied to the source images (SOP instance UIDs, positions), so
writing one needs the series the labels were predicted from, and reading one back onto a voxel grid
needs it again. Slice ``k`` of medseg's array is the ``k``-th file in GDCM's order (the order
:func:`medseg.io.dicom.read_dicom_series` reads), so label slices map to source images by that order;
this stays right for unevenly spaced series, whose volume only approximates the true positions.

Refused with a :class:`MedsegError`: several image series and none chosen, images without the UIDs or
geometry tags DICOM objects must reference, mixed sizes or orientations, gantry tilt (slices shifted
in-plane: frames would not lie on the voxel grid), multi-frame sources, and label maps on another grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.io.dicom import list_dicom_series, quiet_itk
from medseg.io.geometry import LPS_TO_RAS

logger = get_logger(__name__)

NOT_IMAGES = {"SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "PR", "KO", "REG"}
_REQUIRED = ("SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID",
             "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
GRID_ATOL = 1e-3  # mm: headers written with 16-character decimal strings agree far better than this


def require_pydicom() -> None:
    """Raise a one-line error when the ``dicom`` extra (pydicom, highdicom) is not installed."""
    try:
        import highdicom  # noqa: F401
        import pydicom  # noqa: F401
    except ImportError:
        raise MedsegError("DICOM-SEG and RTSTRUCT need pydicom and highdicom",
                          hint='pip install "medseg[dicom]"') from None


@dataclass
class SourceSeries:
    """Headers of one image series in medseg's slice order, and the voxel grid they define."""

    folder: Path
    series_uid: str
    files: list[Path]
    datasets: list  # pydicom Datasets without pixel data, slice k = datasets[k]
    shape: tuple[int, int, int]  # (columns, rows, slices): medseg's (x, y, z)
    affine: np.ndarray  # RAS voxel-to-world, as read_image gives for the series
    positions: np.ndarray  # (slices, 3) ImagePositionPatient, LPS mm
    row_dir: np.ndarray  # LPS unit vector along a row (column index grows)
    col_dir: np.ndarray  # LPS unit vector down a column (row index grows)
    pixel_spacing: tuple[float, float]  # (between rows, between columns), as DICOM's PixelSpacing

    @property
    def uneven(self) -> bool:
        """True when the slice gaps differ by more than 1% (missing slices)."""
        if len(self.positions) < 3:
            return False
        gaps = np.diff(self.positions @ np.cross(self.row_dir, self.col_dir))
        return bool(np.abs(gaps - gaps.mean()).max() > 0.01 * abs(gaps.mean()))

    def world_to_pixel(self, points: np.ndarray, k: int) -> np.ndarray:
        """(row, column) of LPS ``points`` (N, 3) in the plane of slice ``k``."""
        offset = points - self.positions[k]
        return np.stack([offset @ self.col_dir / self.pixel_spacing[0],
                         offset @ self.row_dir / self.pixel_spacing[1]], axis=1)

    def pixel_to_world(self, rows: np.ndarray, columns: np.ndarray, k: int) -> np.ndarray:
        """LPS points (N, 3) of (row, column) pixel coordinates on slice ``k``."""
        return (self.positions[k] + np.outer(columns * self.pixel_spacing[1], self.row_dir)
                + np.outer(rows * self.pixel_spacing[0], self.col_dir))


def image_series(folder: Path) -> list[str]:
    """UIDs of the image series in ``folder`` (segmentations, structure sets and reports left out)."""
    out = []
    for series in list_dicom_series(folder):
        if _modality(folder, series.uid) not in NOT_IMAGES:
            out.append(series.uid)
    return out


def _modality(folder: Path, uid: str) -> str:
    import pydicom
    import SimpleITK as sitk
    from pydicom.errors import InvalidDicomError

    with quiet_itk():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
    try:
        return str(pydicom.dcmread(files[0], stop_before_pixels=True, specific_tags=["Modality"]).get("Modality", ""))
    except (InvalidDicomError, OSError, ValueError, EOFError, IndexError):  # unreadable: not one of ours to skip
        return ""


def load_source_series(folder: str | Path, series_uid: str | None = None) -> SourceSeries:
    """Read and check the headers of one image series in ``folder`` (``series_uid`` picks one of several)."""
    import pydicom
    import SimpleITK as sitk

    require_pydicom()
    folder = Path(folder)
    if not folder.is_dir():
        raise MedsegError("is not a DICOM series folder; DICOM-SEG and RTSTRUCT need the source series",
                          path=folder, hint="segment the DICOM series folder itself, not a NIfTI/NRRD copy")
    uids = image_series(folder)
    if series_uid is None:
        if len(uids) != 1:
            what = "no DICOM image series" if not uids else f"{len(uids)} image series ({', '.join(uids)})"
            raise MedsegError(f"holds {what}; a segmentation object references exactly one", path=folder,
                              hint="give a folder holding one series, or pick it with --series UID")
        series_uid = uids[0]
    elif series_uid not in uids:
        raise MedsegError(f"has no image series {series_uid}", path=folder,
                          hint=f"its image series: {', '.join(uids) or 'none'}")
    with quiet_itk():
        files = [Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid)]
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    return _check(folder, series_uid, files, datasets)


def _check(folder: Path, uid: str, files: list[Path], datasets: list) -> SourceSeries:
    for f, ds in zip(files, datasets, strict=True):
        if int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
            raise MedsegError(f"is an enhanced/multi-frame image ({ds.SOPClassUID.name}); medseg writes "
                              "DICOM-SEG/RTSTRUCT for series of classic single-frame images", path=f,
                              hint="convert it to classic single-frame images (e.g. emf2sf of dcm4che), or write "
                              ".nii.gz")
        missing = [key for key in _REQUIRED if not ds.get(key)]
        if missing:
            raise MedsegError(f"lacks {', '.join(missing)}, which a DICOM-SEG/RTSTRUCT must reference", path=f,
                              hint="export the series again with complete headers (UIDs, position, orientation)")
    first = datasets[0]
    for key in ("Rows", "Columns", "FrameOfReferenceUID", "StudyInstanceUID"):
        values = {str(ds.get(key)) for ds in datasets}
        if len(values) > 1:
            raise MedsegError(f"series {uid} mixes {key} values ({', '.join(sorted(values)[:3])})", path=folder,
                              hint="keep one series of one acquisition per folder")
    orientation = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds in datasets])
    spacing = np.array([[float(v) for v in ds.PixelSpacing] for ds in datasets])
    if np.abs(orientation - orientation[0]).max() > 1e-4 or np.abs(spacing - spacing[0]).max() > 1e-4:
        raise MedsegError(f"series {uid} mixes slice orientations or pixel spacings", path=folder,
                          hint="keep one series of one acquisition per folder")
    row_dir, col_dir = _unit(orientation[0, :3]), _unit(orientation[0, 3:])
    normal = np.cross(row_dir, col_dir)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    n = len(datasets)
    if n > 1:
        along = (positions - positions[0]) @ normal
        drift = (positions - positions[0]) - np.outer(along, normal)
        if np.abs(drift).max() > 0.01 * max(1.0, float(np.abs(along).max()) / (n - 1)):
            per_slice = float(np.linalg.norm(drift[-1])) / (n - 1)
            raise MedsegError(f"series {uid} has gantry tilt (slices shift {per_slice:.3g} mm in-plane per slice); "
                              "segmentation frames would not lie on the image grid", path=folder,
                              hint="resample the series to an untilted grid (e.g. dcm2niix, or 3D Slicer's "
                              "acquisition-correction) and segment that, writing NIfTI")
        if np.any(np.diff(along) <= 0):
            raise MedsegError(f"series {uid} has duplicate or unordered slice positions", path=folder,
                              hint="remove duplicate files; keep one series per folder")
        step = (positions[-1] - positions[0]) / (n - 1)
    else:
        thickness = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        step = normal * thickness
    lps = np.column_stack([row_dir * spacing[0, 1], col_dir * spacing[0, 0], step])
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ lps
    affine[:3, 3] = LPS_TO_RAS @ positions[0]
    series = SourceSeries(folder, uid, files, datasets, (int(first.Columns), int(first.Rows), n), affine,
                          positions, row_dir, col_dir, (float(spacing[0, 0]), float(spacing[0, 1])))
    if series.uneven:
        logger.warning("%s: series %s has unevenly spaced slices; each label slice is stored on its own source "
                       "image (true positions), while the volume read from it used the average spacing",
                       folder, uid)
    return series


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def check_grid(series: SourceSeries, labels: np.ndarray, affine: np.ndarray, path: Path) -> np.ndarray:
    """The label array as (x, y, z) on the series grid; a MedsegError when shape or affine differ."""
    if labels.ndim == 2:
        labels = labels[..., None]
    if tuple(labels.shape) != series.shape:
        raise MedsegError(f"the label map's grid {tuple(labels.shape)} does not match series {series.series_uid} "
                          f"({series.shape[0]}x{series.shape[1]}x{series.shape[2]})", path=path,
                          hint="predict from the series folder itself, or resample the labels onto it")
    columns = 3 if series.shape[2] > 1 else 2
    a = np.asarray(affine, dtype=np.float64)
    if not (np.allclose(a[:3, :columns], series.affine[:3, :columns], atol=GRID_ATOL)
            and np.allclose(a[:3, 3], series.affine[:3, 3], atol=GRID_ATOL)):
        if series.uneven and np.allclose(a[:3, :2], series.affine[:3, :2], atol=GRID_ATOL) \
                and np.allclose(a[:3, 3], series.affine[:3, 3], atol=GRID_ATOL):
            return labels  # GDCM's averaged slice step: the slices still map one to one
        raise MedsegError(f"the label map's position/orientation does not match series {series.series_uid}",
                          path=path, hint="predict from the series folder itself, or resample the labels onto it")
    return labels
