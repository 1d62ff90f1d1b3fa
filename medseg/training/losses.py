"""Training losses: nnU-Net's Dice + cross-entropy (exclusive labels) and Dice + BCE (sigmoid channels, regions),
with nnU-Net's deep-supervision weighting. Which one a model trains with is decided by its output head
(:func:`medseg.models.heads.head_for`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models.heads import deep_supervision_weights

__all__ = ["DeepSupervisionLoss", "DiceBCELoss", "DiceCELoss", "deep_supervision_weights"]


class DiceCELoss(nn.Module):
    """Soft Dice (batch Dice over foreground classes, smooth 1e-5) plus cross-entropy, as nnU-Net trains.

    ``logits``: (N, C, *S); ``target``: (N, 1, *S) integer labels.
    """

    def __init__(self, smooth: float = 1e-5, include_background: bool = False, batch_dice: bool = True) -> None:
        super().__init__()
        self.smooth = smooth
        self.include_background = include_background
        self.batch_dice = batch_dice

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target[:, 0].long()
        ce = F.cross_entropy(logits, target)
        probs = logits.float().softmax(1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
        if not self.include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
        dims = (0, *range(2, probs.ndim)) if self.batch_dice else tuple(range(2, probs.ndim))
        intersection = (probs * onehot).sum(dims)
        denominator = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(1e-8)
        return ce + (1 - dice.mean())


class DiceBCELoss(nn.Module):
    """Binary cross-entropy on each sigmoid channel plus soft Dice per channel (batch Dice, smooth 1e-5), as
    nnU-Net trains region-based models (every channel counts, there is no background channel).

    ``logits``: (N, K, *S); ``target``: (N, K, *S) in {0, 1} (built by the head from integer labels).
    """

    def __init__(self, smooth: float = 1e-5, batch_dice: bool = True) -> None:
        super().__init__()
        self.smooth = smooth
        self.batch_dice = batch_dice

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        probs = logits.float().sigmoid()
        target = target.float()
        dims = (0, *range(2, probs.ndim)) if self.batch_dice else tuple(range(2, probs.ndim))
        intersection = (probs * target).sum(dims)
        denominator = probs.sum(dims) + target.sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(1e-8)
        return bce + (1 - dice.mean())


class DeepSupervisionLoss(nn.Module):
    """Apply ``loss`` to each output of a deep-supervised model against a down-sampled target.

    Label targets are down-sampled by nearest neighbour; with ``soft=True`` (soft-label regression such as
    SAUNA) by area averaging, so thin structures keep a graded label.
    """

    def __init__(self, loss: nn.Module, *, soft: bool = False) -> None:
        super().__init__()
        self.loss = loss
        self.soft = soft

    def _resize(self, target: torch.Tensor, size) -> torch.Tensor:
        if self.soft:
            return F.interpolate(target.float(), size=size, mode="area")
        return F.interpolate(target.float(), size=size, mode="nearest").long()

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, out in zip(deep_supervision_weights(len(outputs)), outputs):
            if weight == 0:  # keep the head in the graph (DDP needs a gradient for every parameter)
                total = total + 0.0 * out.sum()
                continue
            t = target if out.shape[2:] == target.shape[2:] else self._resize(target, out.shape[2:])
            total = total + weight * self.loss(out, t)
        return total
