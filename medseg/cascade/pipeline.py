"""Two-stage coarse-to-fine cascade: stage 1 on the whole scan at coarse spacing, stage 2 at full resolution
only inside each target organ's ROI, with image + upsampled stage-1 probabilities as input channels.

Why: a small organ in a large scan occupies a few percent of the voxels; running a full-resolution model
over all of it wastes most of the time. Stage 1 (DeepOrgan's P-ConvNet / nnU-Net 3d_lowres) localises,
stage 2 (DeepOrgan's stacked R2-ConvNet / nnU-Net 3d_cascade_fullres, soft prior) refines. The fused
probabilities are smoothed with a 3D Gaussian (sigma in mm), reduced to the largest component and pasted
back into the full scan geometry. Counters (``pipeline.counters``) record the windows each stage ran.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage
from torch import nn

from medseg.cascade._resample import (
    coarse_box_to_full,
    coarse_shape,
    resize,
    upsample_box,
)
from medseg.cascade.roi import Roi, expand_roi, roi_from_mask, spacing_of
from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.inference.segment import engine_options, segment
from medseg.transforms.presets import apply_intensity

log = get_logger(__name__)


@dataclass
class CascadeResult:
    """``label``: (1, *S) integer map in the input geometry; ``found``: organ -> stage 1 found it;
    ``rois``: organ -> full-grid ROI; ``counters``: windows / voxels per stage for this call."""

    label: torch.Tensor
    found: dict[str, bool]
    rois: dict[str, Roi]
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def not_found(self) -> list[str]:
        return [k for k, v in self.found.items() if not v]


class _Counting:
    """Wraps a network so sliding-window inference can report how many windows / voxels it evaluated."""

    def __init__(self, net: nn.Module | Callable[[torch.Tensor], torch.Tensor], counters: dict[str, int],
                 prefix: str) -> None:
        self.net, self.counters, self.prefix = net, counters, prefix

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.counters[f"{self.prefix}_windows"] += int(x.shape[0])
        self.counters[f"{self.prefix}_voxels"] += int(x[:, :1].numel())
        return self.net(x)


def _card(model: nn.Module, card: ModelCard | None, which: str) -> ModelCard:
    card = card or getattr(model, "card", None)
    if card is None:
        raise MedsegError(f"{which} model has no model card", hint="pass card= or build it with medseg.models.create_model")
    if card.spatial_dims != 3 or card.activation != "softmax":
        raise MedsegError(f"{which} model {card.name!r} must be a 3D softmax model for the cascade",
                          hint="use a 3D segmentation model from `medseg models list`")
    return card


class CascadePipeline:
    """Run ``stage1`` (coarse, whole scan) then ``stage2`` (full resolution, ROI only).

    Args:
        stage1, stage2: networks returning logits; cards from ``card1``/``card2`` or ``model.card``.
            ``stage2`` takes ``card1.in_channels`` image channels plus one prior channel per stage-1
            foreground label; both cards must name the same labels.
        targets: organs to refine (label names); default all foreground labels.
        margin_mm: ROI margin around stage 1's organ, in mm.
        sigma_mm: 3D Gaussian smoothing of the fused probabilities (0 = off).
        prior_weight: fused = (1 - w) * stage2 + w * upsampled stage-1 probability.
        regional: optional DeepOrgan regional stage (``superpixels.RegionalStage``); its probabilities
            are averaged with stage 2's.
        largest_component: keep only the largest connected component per organ.
    """

    def __init__(self, stage1: nn.Module, stage2: nn.Module, *, card1: ModelCard | None = None,
                 card2: ModelCard | None = None, targets: Sequence[str] | None = None, margin_mm: float = 10.0,
                 sigma_mm: float = 1.0, prior_weight: float = 0.0, overlap: float = 0.25, sw_batch_size: int = 1,
                 largest_component: bool = True, regional: Callable | None = None) -> None:
        self.stage1, self.stage2 = stage1.eval(), stage2.eval()
        self.card1, self.card2 = _card(stage1, card1, "stage-1"), _card(stage2, card2, "stage-2")
        if tuple(self.card1.labels) != tuple(self.card2.labels):
            raise MedsegError(f"stage models have different label sets: {list(self.card1.labels)} vs {list(self.card2.labels)}",
                              hint="train stage 2 on the label set of stage 1")
        n_img = self.card1.in_channels
        expected = n_img + len(self.card1.labels) - 1
        if self.card2.in_channels != expected:
            raise MedsegError(f"stage-2 model takes {self.card2.in_channels} input channels; the cascade feeds "
                              f"{n_img} image + {len(self.card1.labels) - 1} prior channels = {expected}",
                              hint="build stage 2 with in_channels = image channels + foreground labels")
        fg = list(self.card1.labels[1:])
        self.targets = list(targets) if targets else fg
        unknown = [t for t in self.targets if t not in fg]
        if unknown:
            raise MedsegError(f"unknown target organ(s) {unknown}", hint=f"choose from {fg}")
        self.margin_mm, self.sigma_mm, self.prior_weight = margin_mm, sigma_mm, prior_weight
        self.overlap, self.sw_batch_size, self.largest_component = overlap, sw_batch_size, largest_component
        self.regional = regional
        self.counters: dict[str, int] = {}
        self.runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}   # CPU drop-ins per stage
        self.amp = False

    def _sliding(self, net: nn.Module, x: torch.Tensor, card: ModelCard, prefix: str) -> torch.Tensor:
        """Softmax probabilities (K, *S) of one stage through the prediction engine."""
        device = next(net.parameters(), torch.empty(0)).device
        runner = self.runners.get(prefix) if device.type == "cpu" else None   # e.g. an OpenVINO runner
        options = engine_options(card, tuple(x.shape[1:]), overlap=self.overlap, batch_size=self.sw_batch_size,
                                 compute=device, amp=self.amp, probabilities=True)
        result = segment(_Counting(runner or net, self.counters, prefix), card, x.float(), options)
        assert result.probabilities is not None
        return result.probabilities.float()

    def __call__(self, image: torch.Tensor, affine: np.ndarray | torch.Tensor | None = None, *,
                 prior: torch.Tensor | None = None) -> CascadeResult:
        """Segment ``image`` (C, *S); geometry from ``affine`` or ``image.affine`` (MetaTensor).

        ``prior``: stage-1 probabilities (K, *coarse) computed earlier (nnU-Net's ``-prev_stage_predictions``);
        stage 1 is then skipped. Its grid must cover the scan's field of view."""
        if affine is None:
            affine = image.affine if isinstance(image, MetaTensor) else np.eye(4)
        affine = np.array(affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
        raw = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image)
        if raw.ndim != 4 or raw.shape[0] != self.card1.in_channels:
            raise MedsegError(f"cascade input must be (C={self.card1.in_channels}, X, Y, Z), got {tuple(raw.shape)}",
                              hint="read the scan with medseg.io.read_image")
        self.counters = {f"{p}_{k}": 0 for p in ("stage1", "stage2") for k in ("windows", "voxels")}
        full, spacing = tuple(raw.shape[1:]), spacing_of(affine)

        # Stage 1: whole scan at coarse spacing.
        if prior is None:
            cshape = coarse_shape(full, spacing, self.card1.spacing)
            x1 = resize(apply_intensity(raw, self.card1.intensity), cshape)
            probs1 = self._sliding(self.stage1, x1, self.card1, "stage1")
        else:
            probs1 = torch.as_tensor(prior).float()
            cshape = tuple(probs1.shape[1:])
            if probs1.shape[0] != len(self.card1.labels):
                raise MedsegError(f"prior has {probs1.shape[0]} channels for {len(self.card1.labels)} labels",
                                  hint="pass stage-1 probabilities, one channel per label")
        coarse_label = probs1.argmax(0).numpy()
        coarse_spacing = np.asarray(spacing) * np.asarray(full) / np.asarray(cshape)

        # voxel-wise schemes are applied to each ROI crop only; per-image ones need the whole scan's statistics
        voxelwise = self.card2.intensity.kind in ("ct", "none")
        x2_full = raw if voxelwise else apply_intensity(raw, self.card2.intensity)
        out = torch.zeros((1, *full), dtype=torch.int16)
        best = torch.zeros(full, dtype=torch.float32) if len(self.targets) > 1 else None
        found: dict[str, bool] = {}
        rois: dict[str, Roi] = {}
        for name in self.targets:
            k = self.card1.labels.index(name)
            box = roi_from_mask(coarse_label == k, coarse_spacing, 0.0)
            if box is None:
                log.warning("stage 1 found no %s: not found, its mask is empty", name)
                found[name] = False
                continue
            s, e = coarse_box_to_full(box.start, box.stop, cshape, full)
            roi = expand_roi(Roi(s, e), full, spacing, self.margin_mm)
            found[name], rois[name] = True, roi
            prob, mask = self._refine(x2_full, probs1, roi, full, spacing, k)
            if not mask.any():
                log.warning("stage 2 rejected stage 1's %s: not found, its mask is empty", name)
                found[name] = False
                continue
            view_out = out[(0, *roi.slices)]
            if best is None:
                view_out[mask] = k
            else:                                     # overlapping ROIs: the more probable organ wins
                view_best = best[roi.slices]
                win = mask & (prob > view_best)
                view_out[win] = k
                view_best[win] = prob[win]
        label = MetaTensor(out, affine=torch.as_tensor(affine))
        return CascadeResult(label, found, rois, dict(self.counters))

    def _refine(self, x2_full: torch.Tensor, probs1: torch.Tensor, roi: Roi, full: tuple[int, ...],
                spacing: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2 inside ``roi``: returns the organ's fused probability and its final mask (ROI-sized)."""
        prior = upsample_box(probs1, full, roi.start, roi.stop)            # (K, *roi) soft prior
        crop = x2_full[(slice(None), *roi.slices)]
        if self.card2.intensity.kind in ("ct", "none"):
            crop = apply_intensity(crop, self.card2.intensity)
        x2 = torch.cat([crop, prior[1:]], 0)
        fine_spacing = self.card2.spacing
        if fine_spacing is not None and not np.allclose(fine_spacing, spacing, atol=1e-3):
            grid = coarse_shape(roi.shape, spacing, fine_spacing)           # stage 2 trained at another spacing
            probs2 = resize(self._sliding(self.stage2, resize(x2, grid), self.card2, "stage2"), roi.shape)
        else:
            probs2 = self._sliding(self.stage2, x2, self.card2, "stage2")
        fused = (1.0 - self.prior_weight) * probs2 + self.prior_weight * prior
        if self.regional is not None:
            fused[k] = 0.5 * (fused[k] + torch.as_tensor(self.regional(x2), dtype=fused.dtype))
        if self.sigma_mm > 0:
            sig = [self.sigma_mm / s for s in spacing]
            fused = torch.stack([torch.from_numpy(ndimage.gaussian_filter(c.numpy(), sig, mode="nearest")) for c in fused])
        mask = (fused.argmax(0) == k).numpy()
        if self.largest_component and mask.any():
            comps, n = ndimage.label(mask)
            if n > 1:
                mask = comps == (np.argmax(np.bincount(comps.ravel())[1:]) + 1)
        return fused[k], torch.from_numpy(mask)
