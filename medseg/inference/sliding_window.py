"""The sliding-window engine: batched windows, mirroring TTA, AMP, Gaussian blending, cell stitching.

``sliding_window_labels`` works on a 3D grid. A 2D model runs on a volume slice by slice by giving it a
window of size 1 along the slice axis (``window_network`` squeezes that axis for the model), so the
same batching, blending and streaming apply to 2D and 3D models.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.log import get_logger
from medseg.inference.stitcher import CellStitcher, StitchResult
from medseg.inference.tta import mirrored
from medseg.inference.windows import GAUSSIAN_FLOOR, WindowGrid, gaussian_weights

logger = get_logger(__name__)

FLOAT32_STITCH_LIMIT = 1 << 30   # bytes of live float32 cells above which float16 is used
WINDOW_BATCH_BUDGET = 512 << 20  # bytes of float32 window logits per batch when choosing a batch size

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
    activation: str,
    options: EngineOptions,
    progress: ProgressFn | None = None,
) -> StitchResult:
    """Labels for a ``(C, x, y, z)`` float image from a window network.

    Args:
        image: preprocessed image on the CPU (or already on the compute device).
        net: takes ``(B, C, *roi)`` on ``options.compute_device``, returns ``(B, channels, *roi)`` logits.
        channels: output channels; activation: ``"softmax"``, ``"sigmoid"`` or ``"regression"`` (``net``
            then returns the signed map y in [-1, 1], and the result's probabilities are ``(y + 1) / 2``).
        progress: called as ``progress(windows_done, windows_total)`` after each batch.
    """
    padded, crop = pad_to_roi(image, options.roi)
    grid = WindowGrid.plan(padded.shape[1:], options.roi, options.overlap, options.order)
    compute, stitch = torch.device(options.compute_device), torch.device(options.stitch_device)
    accum = choose_accumulation(options, grid, channels)
    stitcher = CellStitcher(grid, channels, activation, accum_dtype=accum, device=stitch,
                            probabilities=options.probabilities, threshold=options.threshold)
    gauss = gaussian_weights(options.roi, stitch, floor=GAUSSIAN_FLOOR if accum == torch.float16 else 0.0)
    source = padded.to(compute) if compute.type != "cpu" else padded
    total = len(grid.windows)
    logger.debug("%d windows of %s over %s, batch %d, accumulate %s on %s", total, options.roi,
                 tuple(padded.shape[1:]), options.batch_size, accum, stitch)
    autocast = (torch.autocast(device_type=compute.type, dtype=torch.float16)
                if options.amp and compute.type == "cuda" else contextlib.nullcontext())
    with torch.inference_mode():
        for first in range(0, total, options.batch_size):
            batch = grid.windows[first:first + options.batch_size]
            x = torch.stack([source[(slice(None), *(slice(s, s + r) for s, r in zip(st, options.roi)))]
                             for st in batch])
            if options.channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
            with autocast:
                logits = mirrored(net, x, options.mirror_axes) if options.mirror_axes else net(x).float()
            if tuple(logits.shape[1:]) != (channels, *options.roi):
                raise RuntimeError(f"the network returned {tuple(logits.shape)} for windows of {tuple(x.shape)}")
            logits = logits.to(stitch, non_blocking=True).mul_(gauss)
            for offset in range(len(batch)):
                stitcher.add(first + offset, logits[offset], gauss)
            del logits, x
            stitcher.finalize_through(first + len(batch) - 1)
            if progress is not None:
                progress(min(first + len(batch), total), total)
    result = stitcher.result()
    logger.debug("peak live stitch memory %.1f MiB", stitcher.peak_live_bytes / 2**20)
    result.labels = result.labels[crop].contiguous() if padded is not image else result.labels
    if result.probabilities is not None and padded is not image:
        result.probabilities = result.probabilities[(slice(None), *crop)].contiguous()
    return result
