"""The BASNet hybrid loss is ~0 at the target, positive elsewhere, finite for extreme inputs."""
from __future__ import annotations

import math

import torch

from medseg.training.basnet_loss import HybridLoss, hybrid_loss


def _target() -> torch.Tensor:
    t = torch.zeros(2, 1, 24, 24)
    t[:, :, 5:15, 8:20] = 1
    return t


def test_zero_at_target():
    t = _target()
    assert hybrid_loss(t.clone(), t, from_logits=False).item() < 1e-5
    logits = (t * 2 - 1) * math.inf                               # +-inf logits are clamped
    assert hybrid_loss(logits, t).item() < 1e-5
    assert hybrid_loss(torch.zeros_like(t), t).item() > 0.5        # an unsure prediction costs


def test_finite_and_differentiable_for_extremes():
    t = _target()
    for pred, from_logits in (((1 - t) * math.inf - t * math.inf, True), (1 - t, False),
                              (torch.zeros_like(t), False), (torch.ones_like(t), False)):
        pred = pred.clone().requires_grad_(True)
        loss = hybrid_loss(pred, t, from_logits=from_logits)
        loss.backward()
        assert torch.isfinite(loss) and loss.item() > 0
        assert torch.isfinite(pred.grad).all()


def test_sums_deep_supervision_outputs():
    t = _target()
    out = torch.randn_like(t)
    assert torch.isclose(HybridLoss()((out, out), t), 2 * hybrid_loss(out, t))
    low = HybridLoss()(torch.randn(2, 1, 12, 12), t)               # lower-resolution side outputs are fine
    assert torch.isfinite(low)
