"""BASNet: 8 full-size maps in training (refined first), one in eval; channels-last input trains."""
from __future__ import annotations

import torch

from medseg.models import create_model
from medseg.training.basnet_loss import HybridLoss

_TINY = {"base": 4, "layers": (1, 1, 1, 1, 1, 1), "refine_channels": 4}


def test_predict_refine_outputs_and_hybrid_loss_backward():
    model = create_model("basnet", in_channels=3, channel_names=("r", "g", "b"), **_TINY).train()
    x = torch.rand(2, 64, 64, 3).permute(0, 3, 1, 2)  # an HWC image batch viewed as CHW (channels-last)
    outs = model(x)
    assert len(outs) == 8 and all(tuple(o.shape) == (2, 1, 64, 64) for o in outs)
    loss = HybridLoss()(outs, (torch.rand(2, 1, 64, 64) > 0.8).float())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        assert tuple(model(x).shape) == (2, 1, 64, 64)
