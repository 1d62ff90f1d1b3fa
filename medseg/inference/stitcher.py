"""Memory-bounded stitching: Gaussian-weighted window logits are summed per cell, and each cell is
turned into labels (and optional probabilities) and freed as soon as its last window has run.

Only the live cells hold C channels: at most ``C x roi_slow x (product of the two other axes)`` values
(see :meth:`WindowGrid.live_voxels_bound`), in float16 for large class counts. Labels need no
normalisation: every class shares the same positive weight sum per voxel, so argmax (softmax models)
and the sign test (sigmoid models) are taken on the raw weighted sums.

Regression models (SAUNA soft labels, ``activation = "regression"``) get windows already turned into the
signed map y in [-1, 1] (the predictor wraps the network); the cells average y with the same Gaussian
weights and keep the soft map as ``p = (y + 1) / 2`` in float16, thresholded by :func:`threshold_labels`.
A sigmoid threshold other than 0.5 compares the weighted logit sums with ``logit(t) x weight sum``.

Windows the engine skips (outside the body mask) add nothing: a cell no window reached is background
(labels 0; probabilities: background 1 for softmax models, 0 elsewhere).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from medseg.inference.windows import WindowGrid
from medseg.models.heads import OutputHead, as_head, threshold_labels

if TYPE_CHECKING:
    from medseg.inference.crop import CropBox

__all__ = ["CellStitcher", "StitchResult", "label_dtype", "threshold_labels"]


@dataclass
class StitchResult:
    """Labels (and probabilities, if asked for) over the whole grid, on the CPU."""

    labels: torch.Tensor                      # (*size) uint8 or int16
    probabilities: torch.Tensor | None = None  # (C, *size) float16 in [0, 1]; regression: the soft map p
    accumulate: str = "float32"                # dtype the cell sums were kept in
    peak_stitch_bytes: int = 0                 # most bytes held by live cells at once
    crop: CropBox | None = None                # where windows were placed (engine run with a mask)
    windows_run: int = 0
    windows_skipped: int = 0                   # windows holding no mask voxel, never run
    background_channel: int | None = None      # probability channel that is 1 where nothing ran (softmax: 0)


def label_dtype(activation: str, channels: int) -> torch.dtype:
    """The smallest integer dtype holding every label value of a model (see :class:`OutputHead`)."""
    return as_head(activation, channels).label_dtype


class CellStitcher:
    """Accumulate weighted window logits into cells and finalise them in window order.

    Args:
        grid: the window plan.
        channels: output channels of the model.
        activation: the model's :class:`~medseg.models.heads.OutputHead` (it turns each finished cell into
            labels), or an activation name for a generic head: ``"softmax"``, ``"sigmoid"``, ``"regression"``
            (windows carry the signed map y; the soft map is always kept).
        accum_dtype: float32 or float16 for the cell sums.
        device: where cells live (the GPU, or the CPU when stitching on CPU).
        probabilities: also keep normalised probabilities (needs a weight sum per voxel).
        threshold: foreground probability threshold of sigmoid and regression models.
    """

    def __init__(self, grid: WindowGrid, channels: int, activation: OutputHead | str, *, accum_dtype: torch.dtype,
                 device: torch.device, probabilities: bool = False, threshold: float = 0.5) -> None:
        self.grid, self.channels = grid, channels
        self.head = as_head(activation, channels)
        self.threshold = float(threshold)
        self.keep_weights = self.head.needs_weights(self.threshold, probabilities)
        probabilities = probabilities or self.head.kind == "regression"   # its soft map is the output
        self.accum_dtype, self.device, self.keep_probabilities = accum_dtype, torch.device(device), probabilities
        self.labels = torch.zeros(grid.size, dtype=self.head.label_dtype)
        self.probabilities = (
            torch.zeros((channels, *grid.size), dtype=torch.float16) if probabilities else None
        )
        self._cells: dict[tuple[int, ...], torch.Tensor] = {}
        self._weights: dict[tuple[int, ...], torch.Tensor] = {}
        self._scratch: torch.Tensor | None = None
        self._next_final = 0
        self.peak_live_bytes = 0
        self.live_bytes = 0                 # bytes held by live cells after the last add

    def add(self, index: int, weighted: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add window ``index``'s Gaussian-weighted logits ``(C, *roi)`` (float32, on ``device``)."""
        start = self.grid.windows[index]
        ranges = self.grid.cell_ranges[index]
        bounds = self.grid.bounds
        for cell in _cells_in(ranges):
            region = tuple(slice(b[c] - s, b[c + 1] - s) for b, c, s in zip(bounds, cell, start))
            piece = weighted[(slice(None), *region)]
            target = self._cells.get(cell)
            if target is None:  # a new cell: the piece converted straight into its own storage
                self._cells[cell] = piece.to(dtype=self.accum_dtype, copy=True)
            else:
                target.add_(self._converted(piece))
            if self.keep_weights and weights is not None:
                wpiece = weights[region]
                wtarget = self._weights.get(cell)
                if wtarget is None:
                    self._weights[cell] = wpiece.clone()
                else:
                    wtarget.add_(wpiece)
        self.live_bytes = sum(t.numel() * t.element_size() for t in self._cells.values())
        self.peak_live_bytes = max(self.peak_live_bytes, self.live_bytes)

    def _converted(self, piece: torch.Tensor) -> torch.Tensor:
        """``piece`` in the accumulation dtype, converted into a scratch buffer of one cell (not of a whole
        window: with 105 heads a 128^3 window is 440 MB in float16, a 64^3 cell 55 MB). The same rounding
        as converting the whole window first, then adding: the sums are bit-identical."""
        if piece.dtype == self.accum_dtype:
            return piece
        n = piece.numel()
        if self._scratch is None or self._scratch.numel() < n:
            self._scratch = None   # free the smaller buffer before allocating the larger one
            self._scratch = torch.empty(n, dtype=self.accum_dtype, device=self.device)
        return self._scratch[:n].view(piece.shape).copy_(piece)

    def finalize_through(self, index: int) -> None:
        """Turn every cell whose last window is ``<= index`` into labels and free it."""
        while self._next_final <= index:
            for cell in self.grid.final_after.get(self._next_final, ()):
                self._finalize(cell)
            self._next_final += 1

    def _finalize(self, cell: tuple[int, ...]) -> None:
        sums = self._cells.pop(cell, None)
        region = self.grid.cell_slices(cell)
        if sums is None:  # every window over this cell was skipped: background (labels are already 0)
            if self.probabilities is not None and self.head.kind == "softmax":
                self.probabilities[0][region] = 1
            return
        weight = self._weights.pop(cell) if self.keep_weights else None
        labels, probs = self.head.finalize(sums, weight, self.threshold, self.probabilities is not None)
        self.labels[region] = labels.to("cpu", self.labels.dtype)
        if self.probabilities is not None and probs is not None:
            self.probabilities[(slice(None), *region)] = probs.to("cpu", torch.float16)

    def result(self) -> StitchResult:
        """The finished labels; every cell must have been finalised."""
        if self._cells:
            raise RuntimeError(f"{len(self._cells)} cells were never finalised")
        return StitchResult(self.labels, self.probabilities, str(self.accum_dtype).removeprefix("torch."),
                            self.peak_live_bytes, background_channel=0 if self.head.kind == "softmax" else None)


def _cells_in(ranges: tuple[tuple[int, int], ...]):
    (a0, a1), (b0, b1), (c0, c1) = ranges
    for a in range(a0, a1):
        for b in range(b0, b1):
            for c in range(c0, c1):
                yield (a, b, c)
