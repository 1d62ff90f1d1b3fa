"""Concurrent spatial and channel squeeze-and-excitation (scSE; Roy, Navab & Wachinger, MICCAI 2018).

``out = x * cSE(x) + x * sSE(x)``: cSE gates channels from globally pooled features (FC-ReLU-FC-sigmoid),
sSE gates positions with a 1x1 conv + sigmoid. Shape-preserving; works in 2D and 3D.
"""
from __future__ import annotations

import torch
from torch import nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


class SCSE(nn.Module):
    """scSE recalibration block; ``reduction`` is the channel squeeze ratio of cSE (2 in the paper)."""

    def __init__(self, dims: int, channels: int, reduction: int = 2) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        conv = _CONV[dims]
        self.cse = nn.Sequential(_POOL[dims](1), conv(channels, hidden, 1), nn.ReLU(inplace=True),
                                 conv(hidden, channels, 1), nn.Sigmoid())
        self.sse = nn.Sequential(conv(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.cse(x) + x * self.sse(x)
