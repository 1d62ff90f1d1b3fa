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
from dataclasses import dataclass, field
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

    out = zoom(labels, np.array(shape) / np.array(labels.shape), order=0, mode="nearest")  # as TotalSegmentator
    if out.shape != tuple(shape):  # rounding of zoom's output shape: pad/crop the last voxel
        fixed = np.zeros(shape, dtype=labels.dtype)
        common = tuple(slice(0, min(a, b)) for a, b in zip(out.shape, shape))
        fixed[common] = out[common]
        out = fixed
    return out


LOGITS_BUDGET = 1 << 30   # bytes of a part's float16 logits up to which the default keeps nnU-Net's arithmetic


@dataclass(frozen=True)
class Runtime:
    """What runs the default path's windows: medseg's CPU runtime choice (``--backend``/``--precision``)."""

    backend: str = "auto"
    precision: str = "auto"


def logits_bytes(model, case) -> int:
    """Bytes of one part's float16 logits over the padded scan (what nnU-Net's arithmetic holds at once)."""
    padded = [max(int(n), int(p)) for n, p in zip(case.data.shape[1:], model.patch)]
    return 2 * int(model.labels.num_heads) * int(np.prod(padded))


def attach_runtime(model, runtime: Runtime) -> Callable[[], str]:
    """Give the part's windows to medseg's CPU runtime (:meth:`NnUNetModel.use_runtime`) and return a function
    that says, once they ran, what ran them (for the log and the sidecar).

    ``auto`` is OpenVINO fp32 behind the accuracy guard, whose verdict is remembered with the compiled part
    (:mod:`medseg.backends.verdict`): a part's first run compiles it and checks it against PyTorch on its first
    window (one window more than PyTorch alone; on a one-window part, the 3 mm task on a trunk CT, that run is
    slower), later runs trust a pass without that window (checked again every 10th run) and never load a
    refused runtime. An explicit ``--backend``/``--precision`` is used as asked."""
    return model.use_runtime(runtime.backend, runtime.precision).describe


@torch.inference_mode()
def run_part(model, case, batch_size: int = 4, progress: Callable[[int, int], None] | None = None,
             exact: bool = False, runtime: Runtime | None = None, notes: list[str] | None = None) -> np.ndarray:
    """One part's labels on the cropped scan grid, step 0.8, no mirroring.

    ``exact``: nnU-Net's own arithmetic in PyTorch fp32 (float16 logits of the whole scan, one window at a time,
    resampled back order 1, argmax), as TotalSegmentator runs it. Default: the same arithmetic whenever the
    part's float16 logits fit :data:`LOGITS_BUDGET` (every 3 mm scan, 1.5 mm scans up to ~20M voxels), with
    the windows on medseg's CPU runtime (see :func:`attach_runtime`); larger scans go through medseg's
    memory-bounded engine (labels decided per cell, float16 cell sums, no full-volume logits)."""
    from medseg.inference.sliding_window import EngineOptions, sliding_window_labels, window_network
    from medseg.nnunet.sliding import window_count

    if len(model.patch) != 3:
        raise MedsegError("TotalSegmentator parts are 3D networks; this folder is 2D", path=model.folder.path)
    model.step, model.crop = STEP, "none"   # TotalSegmentator's step; every window runs (no body skip)
    if exact:
        if notes is not None:
            notes.append(f"{model.folder.path.parent.name}: nnU-Net's arithmetic (--exact), torch fp32")
        return np.asarray(model.exact_labels(case, None)).astype(np.int16)
    windows = window_count(case.data.shape, model.patch, STEP)
    ran = attach_runtime(model, runtime or Runtime())
    name = model.folder.path.parent.name
    if logits_bytes(model, case) <= LOGITS_BUDGET:
        logger.info("part %s: nnU-Net's arithmetic, %d window(s)", name, windows)
        labels = np.asarray(model.nnunet_default_labels(case, None, 1, progress)).astype(np.int16)
        if notes is not None:
            notes.append(f"{name}: nnU-Net's arithmetic, {windows} window(s), {ran()}")
        return labels
    logger.info("part %s: memory-bounded engine (float16 logits would take %.1f GB), %d window(s)",
                name, logits_bytes(model, case) / 1e9, windows)
    net = window_network(model.ensemble, spatial_dims=3)
    options = EngineOptions(roi=tuple(model.patch), overlap=1.0 - STEP, mirror_axes=(), batch_size=batch_size,
                            probabilities=False)
    result = sliding_window_labels(torch.from_numpy(case.data), net, channels=model.labels.num_heads,
                                   activation="softmax", options=options, progress=progress)
    labels = result.labels
    if tuple(labels.shape) != tuple(case.shape_after_cropping):
        labels = F.interpolate(labels[None, None].float(), size=case.shape_after_cropping,
                               mode="nearest-exact")[0, 0]
    if notes is not None:
        notes.append(f"{name}: memory-bounded engine, {windows} window(s), {ran()}")
    return labels.numpy().astype(np.int16)


def check_scan(data: np.ndarray, path: Path) -> None:
    """A 3D scalar volume at least a few voxels thick, else a one-line error."""
    if data.ndim != 3:
        raise MedsegError(f"TotalSegmentator tasks take a 3D CT, this image has {data.ndim} dimensions", path=path,
                          hint="pass a 3D CT (a 4D file: pick a frame with --frame)")
    if min(data.shape) < 2:
        raise MedsegError(f"TotalSegmentator tasks take a 3D CT, this image is a single slice {data.shape}",
                          path=path)


CROP_MARGIN_MM = 20.0   # TotalSegmentator's margin around the coarse masks of a --roi_subset crop


def check_part_labels(part: PartLabels, expected: Sequence[str], task: str) -> None:
    """A part whose dataset.json does not hold the label set TotalSegmentator's task expects is refused, naming
    the labels that differ (a folder of another model, or another version, sits under the task's name)."""
    if not expected or tuple(part.names) == tuple(expected):
        return
    missing = [n for n in expected if n not in part.names]
    extra = [n for n in part.names if n not in expected]
    what = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                 f"not expected {', '.join(extra)}" if extra else "") if x) \
        or "the same names in another order"
    raise MedsegError(f"labels differ from TotalSegmentator's {task!r} part {part.folder.parent.name}: {what}",
                      path=part.folder / "dataset.json",
                      hint="this folder holds another model: download the task's folders again")


def ct_warning(data: np.ndarray) -> str | None:
    """A warning when intensities do not look like CT in Hounsfield units (no air near -1000 HU, or a range
    no CT has); TotalSegmentator's models only make sense on CT."""
    if data.size == 0:
        return None
    sample = data.reshape(-1)[:: max(1, data.size // 2_000_000)].astype(np.float32)
    low, high = np.percentile(sample, [0.5, 99.5])
    if float(sample.min()) > -500 or low > -200 or high > 5000 or high - low < 300:
        return (f"intensities do not look like CT in HU ({low:.0f}..{high:.0f} for the 0.5-99.5 percentiles, "
                "no air near -1000): TotalSegmentator models are made for CT, labels may be meaningless")
    return None


def crop_box(mask: np.ndarray, affine: np.ndarray, margin_mm: float = CROP_MARGIN_MM) -> tuple[slice, ...]:
    """The mask's bounding box grown by ``margin_mm`` (whole voxels, truncated) and clipped to the array."""
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    addon = (margin_mm / zooms).astype(int)
    where = np.nonzero(mask)
    return tuple(slice(max(0, int(w.min()) - a), min(n, int(w.max()) + 1 + a))
                 for w, a, n in zip(where, addon, mask.shape))


@dataclass
class TotalSegResult:
    labels: np.ndarray      # on the input array grid (medseg's reader axes)
    affine: np.ndarray      # the input's
    names: list[str]        # final names by label value ("" for a value left out by a subset)
    warnings: list[str]
    runs: list[str] = field(default_factory=list)   # per part: arithmetic, windows, runtime


def read_parts(part_dirs: Sequence[Path], expected: Sequence[Sequence[str]] | None = None,
               task: str = "total") -> list[PartLabels]:
    """Every part's labels (dataset.json), checked against ``expected`` and against each other."""
    from medseg.nnunet.folder import read_folder

    parts = [part_labels(f, read_folder(f).dataset) for f in part_dirs]
    for part, names in zip(parts, expected or [()] * len(parts)):
        check_part_labels(part, names, task)
    merged_names(parts)
    return parts


def predict(part_dirs: Sequence[Path], spacing_mm: float, data: np.ndarray, affine: np.ndarray, *,
            source: Path, batch_size: int = 4, exact: bool = False, subset: Sequence[str] | None = None,
            crop: tuple[Sequence[Path], float] | None = None, expected: Sequence[Sequence[str]] | None = None,
            task: str = "total", runtime: Runtime | None = None) -> TotalSegResult:
    """Segment one scan (``data`` with its ``affine``, RAS world) with the part folders, merged in order.

    ``subset``: only the parts holding these names run and only they are kept (IDs as in the whole task);
    ``crop``: (part folders, spacing) of a coarse model run first, the scan then cut to its masks of the
    subset grown by 20 mm (TotalSegmentator's ``--roi_subset``); ``expected``: each part's label set;
    ``runtime``: what runs the default path's windows (ignored with ``exact``)."""
    check_scan(data, source)
    warning = ct_warning(data)
    if warning:
        logger.warning("%s: %s", source, warning)
    parts = read_parts(part_dirs, expected, task)
    names = merged_names(parts)
    offsets = np.cumsum([0] + [len(p.names) for p in parts])[:-1]
    run = list(range(len(parts)))
    keep = None
    if subset is not None:
        unknown = [n for n in subset if n not in names]
        if unknown:
            raise MedsegError(f"--labels {', '.join(unknown)}: not a label of this task",
                              hint=f"labels: {', '.join(names[1:])}")
        run = [i for i, p in enumerate(parts) if any(n in subset for n in p.names)]
        keep = [names.index(n) for n in subset]
    out_names = names if keep is None else [n if i in keep or i == 0 else "" for i, n in enumerate(names)]
    full_shape, box, sub_affine = data.shape, None, affine
    if subset is not None and crop is not None:
        coarse = predict(crop[0], crop[1], data, affine, source=source, batch_size=batch_size, exact=exact,
                         runtime=runtime)
        wanted = [coarse.names.index(n) for n in subset if n in coarse.names]
        mask = np.isin(coarse.labels, wanted)
        if not mask.any():
            logger.info("%s: the coarse model finds none of %s: empty labels", source, ", ".join(subset))
            return TotalSegResult(np.zeros(full_shape, np.uint8), affine, out_names, [warning] if warning else [],
                                  coarse.runs)
        box = crop_box(mask, affine)
        data = np.trunc(np.asarray(data[box], dtype=np.float64)).astype(np.int32)  # TotalSegmentator crops to int32
        sub_affine = affine.copy()
        sub_affine[:3, 3] = (affine @ np.array([b.start for b in box] + [1.0]))[:3]
    runs = [] if box is None else [f"crop: {r}" for r in coarse.runs]
    labels = _segment([part_dirs[i] for i in run], [parts[i] for i in run], [int(offsets[i]) for i in run],
                      len(names) - 1, spacing_mm, data, sub_affine, batch_size, exact, runtime, runs)
    if keep is not None:
        labels = np.where(np.isin(labels, keep), labels, 0).astype(labels.dtype)
    if box is not None:
        full = np.zeros(full_shape, dtype=labels.dtype)
        full[box] = labels
        labels = full
    return TotalSegResult(labels, affine, out_names, [warning] if warning else [], runs)


def _segment(part_dirs: Sequence[Path], parts: Sequence[PartLabels], offsets: Sequence[int], total: int,
             spacing_mm: float, data: np.ndarray, affine: np.ndarray, batch_size: int, exact: bool,
             runtime: Runtime | None = None, runs: list[str] | None = None) -> np.ndarray:
    """Canonical orientation, task spacing, every part in order painted over the previous ones, and back."""
    import nibabel as nib

    from medseg.nnunet.export import uncrop
    from medseg.nnunet.predictor import NnUNetModel
    from medseg.nnunet.preprocessing import preprocess

    image = nib.Nifti1Image(np.asarray(data, dtype=np.float64), affine)
    canonical = nib.as_closest_canonical(image)
    # float64 as TotalSegmentator's get_fdata(): float32 interpolation moves 0.05% of voxels by 1 HU after the
    # int32 truncation (example CT, 3 -> 1.5 mm)
    resampled, res_affine = resample_to_spacing(np.asarray(canonical.dataobj, dtype=np.float64),
                                                canonical.affine, spacing_mm)
    resampled = resampled.astype(np.int32)  # TotalSegmentator truncates to int32 after resampling
    merged = np.zeros(resampled.shape, dtype=np.uint8 if total <= 255 else np.uint16)
    with tempfile.TemporaryDirectory(prefix="medseg-totalseg-") as tmp:
        scan = Path(tmp) / "scan_0000.nii.gz"
        nib.save(nib.Nifti1Image(resampled, res_affine), scan)
        del resampled
        for folder, part, offset in zip(part_dirs, parts, offsets):
            model = NnUNetModel.load(folder, folds=[FOLD])
            if model.in_channels != 1:
                raise MedsegError(f"a TotalSegmentator part takes one CT channel, this one takes "
                                  f"{model.in_channels}", path=folder / "dataset.json")
            case = preprocess([scan], model.folder.plans, model.config)
            seg = uncrop(run_part(model, case, batch_size, exact=exact, runtime=runtime, notes=runs), case,
                         model.folder.plans, len(part.names))
            seg = seg.transpose(2, 1, 0)  # SimpleITK (z, y, x) -> nibabel (x, y, z)
            np.copyto(merged, (seg.astype(merged.dtype) + offset), where=seg > 0)  # later parts win
            logger.info("part %s: %d labels", folder.parent.name, len(part.names))
            del model, case, seg
    merged = labels_back(merged, canonical.shape)
    back = nib.Nifti1Image(merged, canonical.affine).as_reoriented(
        nib.orientations.ornt_transform(nib.io_orientation(canonical.affine), nib.io_orientation(affine)))
    return np.asarray(back.dataobj)
