"""SAUNA's losses for signed soft labels y in [-1, 1] and a tanh output (config ``distancesjm-sfl1``).

``shared/docs/models.md`` section 5.2 (from the official Oulu-IMEDS/SAUNA code):

* signed Jaccard metric loss (JML, Wang & Blaschko) over the positive and negative parts
  ``a+ = relu(p), b+ = relu(y), a- = relu(-p), b- = relu(-y)`` with, for non-negative vectors,
  ``I(a, b) = sum|a + b| - sum|a - b|`` and ``U(a, b) = sum|a + b| + sum|a - b|``::

      L_JML = 1 - [I(a+, b+) + I(a-, b-)] / [U(a+, b+) + U(a-, b-) + 1e-8]

  summed over every pixel of the whole batch (per channel, then averaged over channels). It is 0 iff
  p = y (for y not all 0) and positive otherwise.
* focal-L1: ``e = |p - y|``, ``w = alpha * e**beta`` where ``p * y > 0`` (correct sign) else 1, times
  ``pos_weight`` where ``y > 0``; ``L_FL1 = mean(w * e)``. With alpha=2, beta=1 a correctly signed pixel
  costs ``2 e^2`` and a wrongly signed one ``e``; the gradient flows through ``w`` (official loss_type 1)
  unless ``detach_weight``.
* total: ``L = L_FL1 + jml_weight * L_JML`` with jml_weight = 1 (the paper's config).

``p`` is ``tanh(z)`` of the logits (or ``2 sigmoid(z) - 1`` for a sigmoid-card model).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg.training.losses import DeepSupervisionLoss
from medseg.transforms.sauna import sauna_activation


def _channel_sums(x: torch.Tensor) -> torch.Tensor:
    """Sum over batch and space, keep channels: (N, C, *S) -> (C,)."""
    return x.sum(dim=(0, *range(2, x.ndim)))


def signed_jaccard_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The signed JML (module docstring) of ``pred`` and ``target``, both (N, C, *S) in [-1, 1]."""
    pred, target = pred.float(), target.float()
    inter = pred.new_zeros(pred.shape[1])
    union = pred.new_zeros(pred.shape[1])
    for a, b in ((F.relu(pred), F.relu(target)), (F.relu(-pred), F.relu(-target))):
        plus, minus = _channel_sums((a + b).abs()), _channel_sums((a - b).abs())
        inter = inter + plus - minus
        union = union + plus + minus
    return (1.0 - inter / (union + eps)).mean()


def focal_l1_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 1.0,
                  pos_weight: float = 1.0, detach_weight: bool = False) -> torch.Tensor:
    """SAUNA's focal-L1 (module docstring) of ``pred`` and ``target`` in [-1, 1], averaged over pixels."""
    pred, target = pred.float(), target.float()
    error = (pred - target).abs()
    focal = alpha * error.clamp_min(1e-12).pow(beta)   # clamp: a finite gradient at e = 0 for beta < 1
    weight = torch.where(pred * target > 0, focal, torch.ones_like(error))
    if pos_weight != 1.0:
        weight = torch.where(target > 0, weight * pos_weight, weight)
    if detach_weight:
        weight = weight.detach()
    return (weight * error).mean()


class SaunaLoss(nn.Module):
    """``focal_l1 + jml_weight * signed_jml`` on the activated logits; the target is the SAUNA map.

    ``logits``: (N, K, *S) raw network output; ``target``: (N, K, *S) soft labels in [-1, 1].
    """

    def __init__(self, jml_weight: float = 1.0, alpha: float = 2.0, beta: float = 1.0, pos_weight: float = 1.0,
                 detach_weight: bool = False, activation: str = "tanh") -> None:
        super().__init__()
        self.jml_weight = jml_weight
        self.alpha, self.beta, self.pos_weight = alpha, beta, pos_weight
        self.detach_weight = detach_weight
        self.activation = activation

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(f"SAUNA loss: logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
        pred = sauna_activation(logits, self.activation)
        loss = focal_l1_loss(pred, target, self.alpha, self.beta, self.pos_weight, self.detach_weight)
        if self.jml_weight:
            loss = loss + self.jml_weight * signed_jaccard_loss(pred, target)
        return loss


class SoftDeepSupervisionLoss(DeepSupervisionLoss):
    """nnU-Net's deep-supervision weighting for soft targets: lower-resolution outputs are compared with
    the area-averaged (not nearest-neighbour) soft map, so thin structures keep a graded label."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__(loss, soft=True)
