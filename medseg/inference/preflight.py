"""Before preprocessing: is this scan something the model was made for, and will the job fit?

* Size and work: the scan's grid after resampling to the card's spacing (scan extent / model spacing), the
  memory that grid needs, and the work (sliding windows x TTA passes). Beyond the memory available (or
  ``--max-voxels``), or beyond :data:`MAX_WINDOW_PASSES`, predict refuses with the numbers (``--force``
  runs it anyway). A 35x51x35 crop with 25 mm voxels would otherwise become ~875x1275x875 voxels.
* Field of view: a card may declare the largest physical extent (mm) of the scans its weights were made
  for (``field_of_view_mm``). Outside that range is a warning; more than :data:`FOV_REFUSE_FACTOR` times
  outside is refused (a whole abdomen given to a hippocampus-crop model).
* Modality: a scan that looks like CT (air near -1000 HU) given to an MR model is refused; the milder
  mismatch (an MR-looking scan given to a CT model) is a warning.
* Mirroring TTA (:func:`default_tta`): ``--tta`` / ``--no-tta`` decide when given; else the card's ``tta``
  ("on" / "off"); else on, except on a CPU for scans whose windows hold more than
  :data:`CPU_TTA_MAX_WINDOW_VOXELS` voxels (a whole CT: 2**3 = 8 passes would take about an hour on 2 cores);
  the sidecar records the choice and why (``tta_reason``).
* Time: after the first batches of a long job, one line with windows x passes, the expected minutes from the
  measured rate, and what ``--no-tta`` / ``--fast`` would take instead (:func:`time_notice`).

Warnings go to the log (terminal) and into the prediction's sidecar. Only 3D models on 3D scans are sized
(2D images are not resampled).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import torch

from medseg.core.card import ModelCard, target_spacing
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.core.memory import available_memory, format_bytes
from medseg.inference.checks import looks_like_ct
from medseg.inference.windows import window_starts

MAX_WINDOW_PASSES = 100_000   # windows x TTA passes: hours on any CPU, a clear sign of a wrong spacing
FOV_REFUSE_FACTOR = 4.0       # refuse beyond 4x the card's largest extent (or below a quarter of its smallest)
LONG_JOB_SECONDS = 60.0       # the time notice appears for jobs estimated longer than this
CPU_TTA_MAX_WINDOW_VOXELS = 16 * 2**20  # CPU default: mirroring TTA only up to this many window voxels (8 x 128^3)
_MR = {"MR", "MRI", "T1", "T2", "FLAIR"}

logger = get_logger(__name__)


@dataclass(frozen=True)
class WorkEstimate:
    """The resampled grid and the sliding-window work of one scan."""

    input_shape: tuple[int, ...]
    resampled_shape: tuple[int, ...]
    windows: int
    passes: int
    bytes: int

    @property
    def voxels(self) -> int:
        return math.prod(self.resampled_shape)

    @property
    def window_passes(self) -> int:
        return self.windows * self.passes

    def describe(self) -> str:
        shape = "x".join(map(str, self.resampled_shape))
        return (f"{'x'.join(map(str, self.input_shape))} voxels become {shape} at the model's spacing "
                f"({self.voxels:.3g} voxels, ~{format_bytes(self.bytes)}), {self.windows} windows x "
                f"{self.passes} passes")


def bytes_per_voxel(card: ModelCard) -> int:
    """Rough peak bytes per resampled voxel: float32 input copies, float16 class scores, the label map."""
    return 4 * card.in_channels * 2 + 2 * card.out_channels + 1


def _axis_targets(affine: np.ndarray, card: ModelCard) -> list[float | None]:
    """The card's spacing for each voxel axis (after reorientation voxel axis i lies along world axis j)."""
    target = target_spacing(card)
    if target is None:
        return [None, None, None]
    if not card.orientation:
        return list(target)
    world = [int(np.argmax(np.abs(affine[:3, i]))) for i in range(3)]
    if sorted(world) != [0, 1, 2]:
        return list(target)
    return [target[j] for j in world]


def estimate_work(shape: Sequence[int], affine: np.ndarray, card: ModelCard, *, overlap: float,
                  tta: bool) -> WorkEstimate:
    """Resampled grid, windows and TTA passes of a 3D scan of ``shape`` (spatial) with ``affine``."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    targets = _axis_targets(affine, card)
    resampled = tuple(n if t is None else max(1, round(n * float(s) / t))
                      for n, s, t in zip(shape, spacing, targets))
    if card.spatial_dims == 3:
        roi = [int(r) for r in card.roi_size]
        mirror = [a for a in card.mirror_axes if 0 <= a < 3]
    else:  # a 2D model on a volume: one slice thick windows
        roi = [int(r) for r in card.roi_size]
        roi.insert(card.slice_axis, 1)
        mirror = [a for a in card.mirror_axes if 0 <= a < 2]
    windows = 1
    for n, r in zip(resampled, roi):
        windows *= len(window_starts(max(n, r), r, overlap))
    passes = 2 ** len(mirror) if tta else 1
    voxels = math.prod(resampled)
    return WorkEstimate(tuple(int(s) for s in shape), resampled, windows, passes, voxels * bytes_per_voxel(card))


def check_work(estimate: WorkEstimate, card: ModelCard, path: str | None, *, max_voxels: int | None = None,
               force: bool = False) -> list[str]:
    """Refuse (or, with ``force``, warn about) a job beyond memory or :data:`MAX_WINDOW_PASSES`."""
    limit = max_voxels if max_voxels is not None else available_memory() // bytes_per_voxel(card)
    hint = "check the voxel spacing in the header (a wrong unit?), or crop or downsample the scan"
    if estimate.voxels > limit:
        source = ("--max-voxels" if max_voxels is not None
                  else f"what the {format_bytes(available_memory())} of free memory holds")
        problem = f"{estimate.describe()}: more than the {limit:.3g} voxels of {source}"
        hint += "; --max-voxels N or --force to run it anyway"
    elif estimate.window_passes > MAX_WINDOW_PASSES:
        problem = (f"{estimate.describe()} = {estimate.window_passes} window passes, more than the limit of "
                   f"{MAX_WINDOW_PASSES}")
        hint += "; --force to run it anyway"
    else:
        return []
    if force:
        return [f"{path}: {problem}; running anyway (--force)"]
    raise MedsegError(problem, path=path, hint=hint)


def check_field_of_view(shape: Sequence[int], affine: np.ndarray, card: ModelCard, path: str | None, *,
                        force: bool = False) -> list[str]:
    """Compare the scan's largest physical extent (mm) with the card's ``field_of_view_mm``."""
    if card.field_of_view_mm is None:
        return []
    low, high = (float(v) for v in card.field_of_view_mm)
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    extent = float(max(n * s for n, s in zip(shape, spacing)))
    if low <= extent <= high:
        return []
    made_for = f"{card.name} was made for scans {low:g}-{high:g} mm across"
    text = f"spans {extent:.0f} mm but {made_for}"
    if (extent > high * FOV_REFUSE_FACTOR or extent < low / FOV_REFUSE_FACTOR) and not force:
        raise MedsegError(text, path=path,
                          hint="crop the scan to the region the model expects, use a model made for this field "
                               "of view, or --force to run it anyway")
    return [f"{path}: {text}; results may be wrong" + (" (--force)" if force else "")]


def check_modality_strict(image: torch.Tensor, card: ModelCard, path: str | None, *,
                          force: bool = False) -> list[str]:
    """A CT (air near -1000 HU) given to an MR model is refused; an MR given to a CT model warned about."""
    modality = (card.modality or "any").upper()
    if modality in ("ANY", "") or image.ndim - 1 == 2:
        return []
    ct = looks_like_ct(image)
    if modality in _MR and ct:
        text = f"looks like CT (air near -1000 HU), but {card.name} was made for {card.modality}"
        if not force:
            raise MedsegError(text, path=path, hint="use a CT model (see `medseg models list`), or --force")
        return [f"{path}: {text}; running anyway (--force)"]
    if modality == "CT" and not ct:
        return [(f"{path}: does not look like CT in Hounsfield units (no air near -1000), but {card.name} was "
                 f"made for CT; results may be wrong")]
    return []


def blank_reason(image: torch.Tensor) -> str | None:
    """Why an image holds nothing to segment (all NaN, all zero, constant), or None."""
    data = image.as_tensor() if hasattr(image, "as_tensor") else image
    if data.dtype.is_floating_point:
        finite = torch.isfinite(data)
        if not bool(finite.any()):
            return "has no finite voxel (all NaN/inf)"
        values = data[finite]
    else:
        values = data.reshape(-1)
    lo, hi = values.min(), values.max()
    if bool(lo == hi):
        return "is all zero" if float(lo) == 0 else f"is constant ({float(lo):g} everywhere)"
    return None


def outlier_warning(image: torch.Tensor, card: ModelCard, path: str | None) -> list[str]:
    """Isolated extreme voxels, for models whose normalisation does not clip (plain z-score, min-max)."""
    spec = card.intensity
    clipped = spec.kind in ("ct", "percentile", "none") or spec.low is not None or spec.high is not None
    if clipped:
        return []
    flat = image[0].reshape(-1).float()
    flat = flat[torch.isfinite(flat)]
    if flat.numel() < 100:
        return []
    if flat.numel() > 1 << 20:
        flat = flat[:: flat.numel() // (1 << 20) + 1]
    lo, hi = (float(v) for v in torch.quantile(flat, torch.tensor([0.005, 0.995])))
    span = max(hi - lo, 1e-6)
    vmin, vmax = float(image[0].nan_to_num(0).min()), float(image[0].nan_to_num(0).max())
    if vmax > hi + 10 * span or vmin < lo - 10 * span:
        return [(f"{path}: extreme outlier voxels (range {vmin:g}..{vmax:g}, 99% of voxels within "
                 f"{lo:g}..{hi:g}); {card.name} normalises with {spec.kind} without clipping, so they can "
                 "distort the result: check the scan, or clip it (e.g. numpy.clip to its 0.5/99.5 percentiles)")]
    return []


def preflight_warnings(image: torch.Tensor, card: ModelCard, path: str | None, *, overlap: float, tta: bool,
                       max_voxels: int | None = None, force: bool = False) -> list[str]:
    """Every check above on a channel-first image (raises :class:`MedsegError` for a refusal)."""
    warnings = check_modality_strict(image, card, path, force=force)
    if image.ndim - 1 == 3:
        affine = np.asarray(getattr(image, "affine", np.eye(4)), dtype=np.float64)
        shape = tuple(int(s) for s in image.shape[1:])
        estimate = estimate_work(shape, affine, card, overlap=overlap, tta=tta)
        warnings += check_work(estimate, card, path, max_voxels=max_voxels, force=force)
        warnings += check_field_of_view(shape, affine, card, path, force=force)
    return warnings + outlier_warning(image, card, path)


def default_tta(requested: bool | None, card: ModelCard | None, *, windows: int, roi: Sequence[int],
                device: str = "cpu") -> tuple[bool, str]:
    """Mirroring TTA for one scan, and why: the user's ``--tta``/``--no-tta``, else the card's ``tta``
    ("on"/"off"; None: no card), else on, except on a CPU when ``windows`` windows of ``roi`` hold more than
    :data:`CPU_TTA_MAX_WINDOW_VOXELS` voxels."""
    if requested is not None:
        return bool(requested), "--tta" if requested else "--no-tta or --fast"
    policy = getattr(card, "tta", None) or "auto"
    if policy in ("on", "off"):
        return policy == "on", f"model card: {policy}"
    if device != "cpu":
        return True, "default on"
    work = windows * math.prod(int(r) for r in roi)
    if work <= CPU_TTA_MAX_WINDOW_VOXELS:
        return True, "default on (CPU, small scan)"
    return False, (f"CPU default: off for large scans ({windows} windows of {'x'.join(map(str, roi))} > "
                   f"{CPU_TTA_MAX_WINDOW_VOXELS / 2**20:.0f}M window voxels; --tta turns it on)")


def count_windows(shape: Sequence[int], roi: Sequence[int], overlap: float) -> int:
    """Windows the engine places over a grid of ``shape`` (padded up to ``roi``)."""
    return math.prod(len(window_starts(max(int(n), int(r)), int(r), overlap if int(r) > 1 else 0.0))
                     for n, r in zip(shape, roi))


def time_notice(progress: Callable[[int, int], None] | None, path: str | None, *, passes: int,
                fast_windows: int | None = None) -> Callable[[int, int], None]:
    """Wrap a ``progress(done, total)`` callback: when the job is estimated to take longer than
    :data:`LONG_JOB_SECONDS`, log one line after its first batch: windows x passes, the expected minutes and
    what ``--no-tta`` (1 pass) and ``--fast`` (no TTA, ``fast_windows`` windows at overlap 0.25) would take.

    The clock starts at the engine's ``progress(0, total)`` (windows placed, nothing run yet), so reading,
    resampling and cropping the scan do not inflate the rate."""
    state: dict[str, Any] = {"told": False, "start": time.perf_counter()}

    def update(done: int, total: int) -> None:
        if done == 0:
            state["start"] = time.perf_counter()
        elif not state["told"] and done < total:  # a one-batch job is over before a notice could help
            state["told"] = True
            per_window = (time.perf_counter() - state["start"]) / done   # seconds per window, all passes
            if per_window * total > LONG_JOB_SECONDS:
                logger.warning("%s", estimate_line(path, total, passes, per_window, fast_windows))
        if progress is not None:
            progress(done, total)

    return update


def estimate_line(path: str | None, windows: int, passes: int, per_window: float,
                  fast_windows: int | None = None) -> str:
    """``PATH: 27 windows x 8 passes, ~36 min on this machine (10.0 s per window pass); --no-tta ~4 min,
    --fast ~3 min`` (``per_window``: seconds per window with all its passes)."""
    per_pass = per_window / passes
    line = (f"{path or 'this scan'}: {windows} windows x {passes} passes, {_duration(windows * per_window)} on this machine "
            f"({per_pass:.1f} s per window pass)")
    options = []
    if passes > 1:
        options.append(f"--no-tta {_duration(windows * per_pass)}")
    if fast_windows is not None and (fast_windows < windows or passes > 1):
        options.append(f"--fast {_duration(fast_windows * per_pass)}")
    return line + ("; " + ", ".join(options) if options else "")


def _duration(seconds: float) -> str:
    return f"~{seconds:.0f} s" if seconds < 90 else f"~{seconds / 60:.0f} min"


def preflight_header(path: str | PathLike, predictor) -> list[str]:
    """Size and field-of-view checks from a file's header alone (NIfTI/ITK; no voxel data read).

    Raises the same refusals as :func:`preflight_warnings` (and header bombs, :mod:`medseg.io.header`);
    files without a readable header (DICOM, 2D, corrupt) are left to the reader.
    """
    from medseg.io.header import check_claim, read_header

    card, options = predictor.card, predictor.options
    try:
        header = read_header(path)
    except MedsegError:
        raise
    except (OSError, RuntimeError, ValueError, EOFError):  # a corrupt file: the reader names the problem when the case runs
        return []
    if header is None or card.spatial_dims != 3 or len(header.shape) < 3 or header.colour:
        return []
    check_claim(header)
    shape = header.spatial_shape
    estimate = estimate_work(shape, header.affine, card, overlap=predictor.overlap, tta=predictor.tta)
    warnings = check_work(estimate, card, str(path), max_voxels=options.max_voxels, force=options.force)
    return warnings + check_field_of_view(shape, header.affine, card, str(path), force=options.force)
