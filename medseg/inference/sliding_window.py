"""The sliding-window engine: batched windows, mirroring TTA, AMP, Gaussian blending, cell stitching.

``sliding_window_labels`` works on a 3D grid. A 2D model runs on a volume slice by slice by giving it a
window of size 1 along the slice axis (``window_network`` squeezes that axis for the model), so the
same batching, blending and streaming apply to 2D and 3D models.

Given a ``mask`` (the body or the non-zero region, :mod:`medseg.inference.crop`), windows are placed over
the mask's bounding box, along the axes where that needs fewer windows than the whole grid (elsewhere the
windows stay where they were), and a window holding no mask voxel is never run; everything outside the box
is background, and the labels come back on the full grid. Skipping is exact inside the mask: a voxel of
the mask lies in no skipped window, so it gets the same windows (and the same sums) as without skipping.
Cropping an axis moves its windows, which changes labels near window seams as nnU-Net's own crop does.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.log import get_logger
from medseg.inference.crop import CropBox, bounding_box, grow_to
from medseg.inference.stitcher import CellStitcher, StitchResult
from medseg.inference.tta import mirrored
from medseg.inference.windows import GAUSSIAN_FLOOR, WindowGrid, gaussian_weights, window_starts
from medseg.models.heads import OutputHead, as_head

logger = get_logger(__name__)

FLOAT32_STITCH_LIMIT = 1 << 30   # bytes of live float32 cells above which float16 is used
WINDOW_BATCH_BUDGET = 512 << 20  # bytes of float32 window logits per batch when choosing a batch size
TRIM_LIVE_BYTES = 8 << 20        # live cells above which freed heap pages are returned after each batch

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs (all resolved, no 'auto' left)."""

    roi: tuple[int, int, int]
    overlap: float = 0.5
    mirror_axes: tuple[int, ...] = ()      # spatial axes of the 3D grid to flip for TTA
    batch_size: int = 1
    compute_device: str = "cpu"
    stitch_device: str = "cpu"
    amp: bool = False
    channels_last: bool = False
    accumulate: str = "auto"                # "auto", "float32" or "float16"
    probabilities: bool = False
    order: tuple[int, ...] | None = None    # axis processing order; default: longest axis first
    threshold: float = 0.5                  # foreground probability threshold (sigmoid / regression)


def window_network(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], *, spatial_dims: int,
                   slice_axis: int = 2) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a network (or any callable with its contract) to take ``(B, C, x, y, z)`` windows; a 2D
    model gets the slice axis squeezed out."""

    def run(x: torch.Tensor) -> torch.Tensor:
        if spatial_dims == 2:
            out = _first(model(x.squeeze(2 + slice_axis)))
            return out.unsqueeze(2 + slice_axis)
        return _first(model(x))

    return run


def _first(out):
    if isinstance(out, (list, tuple)):
        return out[0]
    if isinstance(out, dict):
        return next(iter(out.values()))
    return out


def auto_batch_size(channels: int, roi: Sequence[int], device: str) -> int:
    """Windows per batch: as many as fit ``WINDOW_BATCH_BUDGET`` of logits, 1..8 (CPU) or 1..4 (GPU)."""
    per_window = channels * math.prod(roi) * 4
    cap = 8 if device == "cpu" else 4
    return int(max(1, min(cap, WINDOW_BATCH_BUDGET // max(per_window, 1))))


def pad_to_roi(image: torch.Tensor, roi: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad ``(C, *spatial)`` symmetrically up to ``roi``; returns the padded image and the crop back."""
    spatial = image.shape[1:]
    pads, crop = [], []
    for n, r in zip(spatial, roi):
        total = max(0, int(r) - int(n))
        before = total // 2
        pads.append((before, total - before))
        crop.append(slice(before, before + int(n)))
    if not any(sum(p) for p in pads):
        return image, tuple(crop)
    flat = [v for pair in reversed(pads) for v in pair]
    return F.pad(image, flat), tuple(crop)


def choose_accumulation(options: EngineOptions, grid: WindowGrid, channels: int) -> torch.dtype:
    """float32 when the live cells stay under ``FLOAT32_STITCH_LIMIT``, else float16."""
    if options.accumulate == "float32":
        return torch.float32
    if options.accumulate == "float16":
        return torch.float16
    live = channels * grid.live_voxels_bound() * 4
    return torch.float32 if live <= FLOAT32_STITCH_LIMIT else torch.float16


def sliding_window_labels(
    image: torch.Tensor,
    net: Callable[[torch.Tensor], torch.Tensor],
    *,
    channels: int,
    activation: OutputHead | str,
    options: EngineOptions,
    progress: ProgressFn | None = None,
    mask: torch.Tensor | None = None,
) -> StitchResult:
    """Labels for a ``(C, x, y, z)`` float image from a window network.

    Args:
        image: preprocessed image on the CPU (or already on the compute device).
        net: takes ``(B, C, *roi)`` on ``options.compute_device``, returns ``(B, channels, *roi)`` logits.
        channels: output channels; activation: the model's :class:`~medseg.models.heads.OutputHead` (or
            ``"softmax"``, ``"sigmoid"``, ``"regression"``: ``net`` then returns the signed map y in [-1, 1],
            and the result's probabilities are ``(y + 1) / 2``).
        progress: called as ``progress(windows_done, windows_total)`` after each batch (windows that run).
        mask: ``(x, y, z)`` bool, where there is something to segment: windows cover its bounding box only
            and skip where it is empty; None runs every window over the whole grid.
    """
    full_shape = tuple(int(s) for s in image.shape[1:])
    box: CropBox | None = None
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if tuple(mask.shape) != full_shape:
            raise ValueError(f"mask {tuple(mask.shape)} does not match the image grid {full_shape}")
        box = bounding_box(mask, "mask")   # the same margin as the box on the scan's grid
        if box is None:  # nothing to segment anywhere
            return _background(full_shape, channels, activation, options, CropBox((0,) * 3, (0,) * 3,
                                                                                  full_shape, "mask"))
        box = keep_full_axes(grow_to(box, options.roi), options.roi, options.overlap)
        image, mask = image[(slice(None), *box.slices)], mask[box.slices]
    padded, crop = pad_to_roi(image, options.roi)
    grid = WindowGrid.plan(padded.shape[1:], options.roi, options.overlap, options.order)
    run = list(range(len(grid.windows)))
    if mask is not None:
        padded_mask = pad_to_roi(mask[None].to(torch.uint8), options.roi)[0][0].bool()
        run = [i for i, st in enumerate(grid.windows)
               if bool(padded_mask[tuple(slice(s, s + r) for s, r in zip(st, options.roi))].any())]
        del padded_mask, mask   # two box-sized copies, not needed while the windows run
    compute, stitch = torch.device(options.compute_device), torch.device(options.stitch_device)
    accum = choose_accumulation(options, grid, channels)
    stitcher = CellStitcher(grid, channels, activation, accum_dtype=accum, device=stitch,
                            probabilities=options.probabilities, threshold=options.threshold)
    gauss = gaussian_weights(options.roi, stitch, floor=GAUSSIAN_FLOOR if accum == torch.float16 else 0.0)
    source = padded.to(compute) if compute.type != "cpu" else padded
    total = len(run)
    logger.debug("%d of %d windows of %s over %s (box %s), batch %d, accumulate %s on %s", total,
                 len(grid.windows), options.roi, tuple(padded.shape[1:]), box.to_dict() if box else "none",
                 options.batch_size, accum, stitch)
    autocast = (torch.autocast(device_type=compute.type, dtype=torch.float16)
                if options.amp and compute.type == "cuda" else contextlib.nullcontext())
    if progress is not None:
        progress(0, total)   # windows placed: the clock of the time estimate starts here
    with torch.inference_mode():
        for first in range(0, total, options.batch_size):
            batch = run[first:first + options.batch_size]
            x = torch.stack([source[(slice(None), *(slice(s, s + r) for s, r in zip(grid.windows[i], options.roi)))]
                             for i in batch])
            if options.channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            with autocast:
                logits = mirrored(net, x, options.mirror_axes) if options.mirror_axes else net(x).float()
            if tuple(logits.shape[1:]) != (channels, *options.roi):
                raise RuntimeError(f"the network returned {tuple(logits.shape)} for windows of {tuple(x.shape)}")
            logits = logits.to(stitch, non_blocking=True).mul_(gauss)
            for offset, index in enumerate(batch):
                stitcher.add(index, logits[offset], gauss)
            del logits, x
            stitcher.finalize_through(batch[-1])
            if stitch.type == "cpu" and stitcher.live_bytes >= TRIM_LIVE_BYTES:
                release_freed_memory()
            if progress is not None:
                progress(min(first + len(batch), total), total)
        stitcher.finalize_through(len(grid.windows) - 1)  # cells whose last windows were skipped
    result = stitcher.result()
    logger.debug("peak live stitch memory %.1f MiB", stitcher.peak_live_bytes / 2**20)
    result.labels = result.labels[crop].contiguous() if padded is not image else result.labels
    if result.probabilities is not None and padded is not image:
        result.probabilities = result.probabilities[(slice(None), *crop)].contiguous()
    result.windows_run, result.windows_skipped = total, len(grid.windows) - total
    return _paste(result, box, full_shape) if box is not None and not box.whole else _with_box(result, box)


def release_freed_memory() -> None:
    """Give the pages of freed cells and window temporaries back to the system (glibc ``malloc_trim``).

    After a window's large logits are freed, glibc raises its mmap threshold (up to 32 MB), so cells and
    temporaries below it come from the heap, whose freed pages stay resident: a fragmented heap grew the
    peak 10x past the live cells with 105 heads (``tests/inference/test_stitcher_memory.py``). The engine
    trims once per batch while the live cells exceed ``TRIM_LIVE_BYTES`` (a trim and the page faults after
    it cost ~15 ms: nothing next to a many-class window, too much for small fast models, which do not
    fragment); elsewhere than glibc it does nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def keep_full_axes(box: CropBox, roi: Sequence[int], overlap: float) -> CropBox:
    """``box`` cropped only along the axes where it needs fewer windows than the whole grid; along the others
    it spans the grid, so the windows there are exactly the uncropped ones (moving windows changes labels
    near their seams and buys nothing when their number stays the same)."""
    start, stop = list(box.start), list(box.stop)
    for a, (n, r) in enumerate(zip(box.shape, roi)):
        step = overlap if r > 1 else 0.0
        if len(window_starts(max(box.size[a], r), r, step)) >= len(window_starts(max(n, r), r, step)):
            start[a], stop[a] = 0, n
    return CropBox(tuple(start), tuple(stop), box.shape, box.mode)


def _with_box(result: StitchResult, box: CropBox | None) -> StitchResult:
    result.crop = box
    return result


def _background(shape: tuple[int, ...], channels: int, activation: OutputHead | str, options: EngineOptions,
                box: CropBox) -> StitchResult:
    """An all-background result on ``shape`` (the mask was empty: no window runs)."""
    head = as_head(activation, channels)
    keep = options.probabilities or head.kind == "regression"
    probabilities = torch.zeros((channels, *shape), dtype=torch.float16) if keep else None
    if probabilities is not None and head.kind == "softmax":
        probabilities[0] = 1
    return StitchResult(torch.zeros(shape, dtype=head.label_dtype), probabilities, "float32", 0, crop=box,
                        windows_run=0, windows_skipped=0)


def _paste(result: StitchResult, box: CropBox, shape: tuple[int, ...]) -> StitchResult:
    """The box's result put back on the full grid ``shape``; outside the box is background."""
    labels = torch.zeros(shape, dtype=result.labels.dtype)
    labels[box.slices] = result.labels
    probabilities = None
    if result.probabilities is not None:
        channels = result.probabilities.shape[0]
        probabilities = torch.zeros((channels, *shape), dtype=result.probabilities.dtype)
        if result.background_channel is not None:
            probabilities[result.background_channel] = 1
        probabilities[(slice(None), *box.slices)] = result.probabilities
    result.labels, result.probabilities, result.crop = labels, probabilities, box
    return result
