"""BASNet hybrid loss (Qin et al., CVPR 2019): BCE (pixel) + SSIM (patch) + IoU (map), for any binary model.

``L = BCE(p, y) + (1 - SSIM(p, y)) + (1 - IoU_soft(p, y))`` on the foreground probability ``p``. SSIM uses
an 11x11 Gaussian window (sigma 1.5) as in the paper's code. Inputs are logits by default (clamped to
+-``LOGIT_CLAMP`` so +-inf stays finite) or probabilities (``from_logits=False``, clamped to [eps, 1-eps]).
A tuple/list of outputs (deep supervision, e.g. BASNet's 8 maps) is summed with equal weights.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOGIT_CLAMP = 30.0
EPS = 1e-7
_C1, _C2 = 0.01 ** 2, 0.03 ** 2


def _gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g).view(1, 1, size, size)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity of (B, C, H, W) maps in [0, 1] (zero-padded Gaussian window)."""
    c = x.shape[1]
    w = _gaussian_window(window, sigma, x.device, x.dtype).expand(c, 1, window, window)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * cov + _C2)
    den = (mu_x ** 2 + mu_y ** 2 + _C1) * (var_x + var_y + _C2)
    return (num / den).mean()


def hybrid_loss(pred: torch.Tensor, target: torch.Tensor, *, from_logits: bool = True) -> torch.Tensor:
    """BCE + (1 - SSIM) + (1 - soft IoU) of one (B, 1, H, W) prediction against a {0, 1} target."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    target = target.to(pred.dtype)
    if from_logits:
        logits = torch.nan_to_num(pred, nan=0.0).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        prob = torch.sigmoid(logits)
    else:
        prob = torch.nan_to_num(pred, nan=0.5).clamp(EPS, 1 - EPS)
        bce = F.binary_cross_entropy(prob, target)
    dims = tuple(range(1, prob.ndim))
    inter = (prob * target).sum(dims)
    union = (prob + target - prob * target).sum(dims)
    iou = 1 - ((inter + EPS) / (union + EPS)).mean()
    return bce + (1 - ssim(prob, target)) + iou


class HybridLoss(nn.Module):
    """The hybrid loss summed over a model's outputs (one tensor, or a tuple from deep supervision)."""

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        self.from_logits = from_logits

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
        total = outputs[0].new_zeros(())
        for out in outputs:
            t = target if out.shape == target.shape else F.interpolate(target.float(), size=out.shape[2:], mode="nearest")
            total = total + hybrid_loss(out, t, from_logits=self.from_logits)
        return total
