"""TotalSegmentator's inference semantics on nnU-Net v2 part folders, run by :mod:`medseg.nnunet`.

Steps (as TotalSegmentator's ``nnUNet_predict_image`` does them): the scan is turned to the closest
canonical (RAS) orientation, resampled to the task spacing (order 1, edge values repeated, then truncated to
int32), each part runs fold 0 with window step 0.8 and no mirroring, part label maps are merged into the
final IDs in part order (a part's labels follow those of the parts before it; later parts win where two
claim a voxel), the merged map goes back to the canonical grid nearest-neighbour and then to the scan's own
orientation, with the scan's affine. Windows run through medseg's memory-bounded engine (labels decided per
cell, no full-volume probabilities) instead of splitting large scans in thirds.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)

STEP = 0.8          # TotalSegmentator's window step (fraction of the patch); medseg's overlap = 1 - step
FOLD = "0"


@dataclass(frozen=True)
class PartLabels:
    """A part's foreground names in label-value order (1..n), read from its dataset.json."""

    folder: Path
    names: tuple[str, ...]


def part_labels(folder: Path, dataset: dict) -> PartLabels:
    """Foreground names of a part (plain labels 1..n only: region-based parts are refused by name)."""
    from medseg.nnunet.labels import read_labels

    try:
        labels = read_labels(dataset)
    except MedsegError as exc:
        raise MedsegError(str(exc.args[0]), path=folder / "dataset.json") from exc
    if labels.has_regions:
        raise MedsegError("a TotalSegmentator part must have plain labels, this dataset.json defines regions",
                          path=folder / "dataset.json")
    return PartLabels(folder, tuple(labels.names[v] for v in labels.all_labels if v != 0))


def merged_names(parts: Sequence[PartLabels]) -> list[str]:
    """Final names by label value (index 0 = background): each part's labels after the previous parts'.

    A name held by two parts means a folder sits in the wrong slot (e.g. the 3 mm model copied as a part):
    refused, naming both dataset.json files."""
    names, owner = ["background"], {}
    for part in parts:
        for name in part.names:
            if name in owner:
                raise MedsegError(f"label {name!r} is in two parts ({owner[name] / 'dataset.json'} too)",
                                  path=part.folder / "dataset.json",
                                  hint="each part folder must hold its own labels: check the folder names")
            owner[name] = part.folder
        names += part.names
    return names


def merge(maps: Sequence[np.ndarray], parts: Sequence[PartLabels]) -> np.ndarray:
    """Part label maps (values 0..n_part) -> one map of final IDs; a later part wins a voxel two claim."""
    total = sum(len(p.names) for p in parts)
    out = np.zeros(maps[0].shape, dtype=np.uint8 if total <= 255 else np.uint16)
    offset = 0
    for seg, part in zip(maps, parts):
        mapped = np.where(seg > 0, seg.astype(out.dtype) + offset, 0).astype(out.dtype)
        np.copyto(out, mapped, where=seg > 0)
        offset += len(part.names)
    return out


def resample_to_spacing(data: np.ndarray, affine: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """TotalSegmentator's resampling of the canonical scan: order 1, mode nearest, new shape rounded."""
    from scipy.ndimage import zoom

    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    new_shape = np.maximum(np.round(np.array(data.shape) * zooms / spacing_mm), 1).astype(int)
    factors = new_shape / np.array(data.shape)
    out = zoom(data, factors, order=1, mode="nearest") if not np.allclose(factors, 1) else data
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] / factors[None, :]
    return out, new_affine


def labels_back(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour back to ``shape`` (TotalSegmentator: zoom order 0)."""
    if tuple(labels.shape) == tuple(shape):
        return labels
    from scipy.ndimage import zoom

    out = zoom(labels, np.array(shape) / np.array(labels.shape), order=0)
    if out.shape != tuple(shape):  # rounding of zoom's output shape: pad/crop the last voxel
        fixed = np.zeros(shape, dtype=labels.dtype)
        common = tuple(slice(0, min(a, b)) for a, b in zip(out.shape, shape))
        fixed[common] = out[common]
        out = fixed
    return out


@torch.inference_mode()
def run_part(model, case, batch_size: int = 4,
             progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """One part's labels on the cropped scan grid: medseg's engine, step 0.8, no mirroring, labels per cell."""
    from medseg.inference.sliding_window import EngineOptions, sliding_window_labels, window_network

    if len(model.patch) != 3:
        raise MedsegError("TotalSegmentator parts are 3D networks; this folder is 2D", path=model.folder.path)
    net = window_network(model.ensemble, spatial_dims=3)
    options = EngineOptions(roi=tuple(model.patch), overlap=1.0 - STEP, mirror_axes=(), batch_size=batch_size,
                            probabilities=False)
    result = sliding_window_labels(torch.from_numpy(case.data), net, channels=model.labels.num_heads,
                                   activation="softmax", options=options, progress=progress)
    labels = result.labels
    if tuple(labels.shape) != tuple(case.shape_after_cropping):
        labels = F.interpolate(labels[None, None].float(), size=case.shape_after_cropping,
                               mode="nearest-exact")[0, 0]
    return labels.numpy().astype(np.int16)


def check_scan(data: np.ndarray, path: Path) -> None:
    """A 3D scalar volume at least a few voxels thick, else a one-line error."""
    if data.ndim != 3:
        raise MedsegError(f"TotalSegmentator tasks take a 3D CT, this image has {data.ndim} dimensions", path=path,
                          hint="pass a 3D CT (a 4D file: pick a frame with --frame)")
    if min(data.shape) < 2:
        raise MedsegError(f"TotalSegmentator tasks take a 3D CT, this image is a single slice {data.shape}",
                          path=path)


@dataclass
class TotalSegResult:
    labels: np.ndarray      # on the input array grid (medseg's reader axes)
    affine: np.ndarray      # the input's
    names: list[str]        # final names by label value


def predict(part_dirs: Sequence[Path], spacing_mm: float, data: np.ndarray, affine: np.ndarray, *,
            source: Path, batch_size: int = 4) -> TotalSegResult:
    """Segment one scan (``data`` with its ``affine``, RAS world) with the part folders, merged in order."""
    import nibabel as nib

    from medseg.nnunet.export import uncrop
    from medseg.nnunet.folder import read_folder
    from medseg.nnunet.predictor import NnUNetModel
    from medseg.nnunet.preprocessing import preprocess

    check_scan(data, source)
    image = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    canonical = nib.as_closest_canonical(image)
    resampled, res_affine = resample_to_spacing(np.asarray(canonical.dataobj, dtype=np.float32),
                                                canonical.affine, spacing_mm)
    resampled = resampled.astype(np.int32)  # TotalSegmentator truncates to int32 after resampling
    maps, parts = [], []
    with tempfile.TemporaryDirectory(prefix="medseg-totalseg-") as tmp:
        scan = Path(tmp) / "scan_0000.nii.gz"
        nib.save(nib.Nifti1Image(resampled, res_affine), scan)
        names = merged_names([part_labels(f, read_folder(f).dataset) for f in part_dirs])
        for folder in part_dirs:
            model = NnUNetModel.load(folder, folds=[FOLD])
            if model.in_channels != 1:
                raise MedsegError(f"a TotalSegmentator part takes one CT channel, this one takes "
                                  f"{model.in_channels}", path=folder / "dataset.json")
            parts.append(part_labels(folder, model.folder.dataset))
            case = preprocess([scan], model.folder.plans, model.config)
            seg = uncrop(run_part(model, case, batch_size), case, model.folder.plans, len(parts[-1].names))
            maps.append(np.ascontiguousarray(seg.transpose(2, 1, 0)))  # SimpleITK (z, y, x) -> nibabel (x, y, z)
            logger.info("part %s: %d labels", folder.parent.name, len(parts[-1].names))
            del model
    merged = labels_back(merge(maps, parts), canonical.shape)
    back = nib.Nifti1Image(merged, canonical.affine).as_reoriented(
        nib.orientations.ornt_transform(nib.io_orientation(canonical.affine), nib.io_orientation(affine)))
    return TotalSegResult(np.asarray(back.dataobj), affine, names)
