"""Building blocks of the multi-scale guided attention network (Sinha & Dolz), for 2D and 3D.

- :class:`PositionAttention` (PAM): self-attention over positions, ``y = gamma * V softmax(Q^T K)^T + x``
  with 1x1 query/key convs to C/8 and gamma starting at 0. In 3D it can run on an average-pooled grid
  (at most ``max_tokens`` positions) and up-sample its output, since full attention is O(N^2).
- :class:`ChannelAttention` (CAM): ``E = X X^T`` over channels, ``softmax(rowmax(E) - E)``, gamma at 0.
- :class:`AttentionBranch`: conv3 (2C -> C) + norm + PReLU, PAM or CAM, conv3 + norm + PReLU.
- :class:`SemanticGuide`: an encoder-decoder (2C -> 4C -> 8C, then back) returning its latent code and a
  reconstruction of its input; both feed the auxiliary guidance losses.
- :class:`MultiConv`: conv3 + norm + PReLU, twice, then conv1 + norm + PReLU (the fusion block).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg.models._resnext import norm_layer

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_TCONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXPOOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bi/tri-linear resize to ``size`` (no-op when already there)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear" if x.ndim == 4 else "trilinear", align_corners=False)


class PositionAttention(nn.Module):
    """Position attention module (PAM); ``max_tokens`` bounds the attended positions (None = all)."""

    def __init__(self, dims: int, channels: int, max_tokens: int | None = None) -> None:
        super().__init__()
        conv = _CONV[dims]
        self.query_conv = conv(channels, max(channels // 8, 1), 1)
        self.key_conv = conv(channels, max(channels // 8, 1), 1)
        self.value_conv = conv(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.max_tokens = max_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        src = x
        if self.max_tokens is not None and size.numel() > self.max_tokens:
            factor = (size.numel() / self.max_tokens) ** (1.0 / len(size))
            grid = [max(1, int(s // factor)) for s in size]
            src = F.adaptive_avg_pool2d(x, grid) if x.ndim == 4 else F.adaptive_avg_pool3d(x, grid)  # type: ignore[arg-type]
        b, c = src.shape[:2]
        q = self.query_conv(src).flatten(2).transpose(1, 2)        # B, N, C/8
        k = self.key_conv(src).flatten(2)                          # B, C/8, N
        attention = torch.softmax(torch.bmm(q, k), dim=-1)         # B, N, N
        v = self.value_conv(src).flatten(2)                        # B, C, N
        out = torch.bmm(v, attention.transpose(1, 2)).view(b, c, *src.shape[2:])
        return self.gamma * resize(out, size) + x


class ChannelAttention(nn.Module):
    """Channel attention module (CAM)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)                                         # B, C, N
        energy = torch.bmm(flat, flat.transpose(1, 2))              # B, C, C
        energy = energy.max(dim=-1, keepdim=True).values.expand_as(energy) - energy
        out = torch.bmm(torch.softmax(energy, dim=-1), flat).view_as(x)
        return self.gamma * out + x


class AttentionBranch(nn.Module):
    """conv3 (2C -> C), norm, PReLU, PAM or CAM, conv3, norm, PReLU."""

    def __init__(self, dims: int, channels: int, position: bool, norm: str, max_tokens: int | None) -> None:
        super().__init__()
        conv = _CONV[dims]
        self.attn = nn.Sequential(
            conv(2 * channels, channels, 3, padding=1), norm_layer(dims, norm, channels), nn.PReLU(),
            PositionAttention(dims, channels, max_tokens) if position else ChannelAttention(),
            conv(channels, channels, 3, padding=1), norm_layer(dims, norm, channels), nn.PReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


def _double_conv(dims: int, cin: int, cout: int, norm: str) -> list[nn.Module]:
    conv = _CONV[dims]
    return [conv(cin, cout, 3, padding=1), norm_layer(dims, norm, cout), nn.ReLU(inplace=True),
            conv(cout, cout, 3, padding=1), norm_layer(dims, norm, cout), nn.ReLU(inplace=True)]


class SemanticGuide(nn.Module):
    """Encoder-decoder on ``in_channels`` (= 2C): returns (latent code, reconstruction of the input)."""

    def __init__(self, dims: int, in_channels: int, norm: str) -> None:
        super().__init__()
        c = in_channels
        self.enc1 = nn.Sequential(*_double_conv(dims, c, 2 * c, norm), _MAXPOOL[dims](2, 2))
        self.enc2 = nn.Sequential(*_double_conv(dims, 2 * c, 4 * c, norm), _MAXPOOL[dims](2, 2))
        self.dec2 = nn.Sequential(*_double_conv(dims, 4 * c, 2 * c, norm), _TCONV[dims](2 * c, 2 * c, 2, stride=2))
        self.dec1 = nn.Sequential(*_double_conv(dims, 2 * c, c, norm), _TCONV[dims](c, c, 2, stride=2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e1 = self.enc1(x)
        latent = self.enc2(e1)
        recon = self.dec1(resize(self.dec2(latent), e1.shape[2:]))
        return latent, resize(recon, x.shape[2:])


class MultiConv(nn.Module):
    """conv3 + norm + PReLU, conv3 + norm + PReLU, conv1 + norm + PReLU."""

    def __init__(self, dims: int, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        conv = _CONV[dims]
        self.fuse = nn.Sequential(
            conv(cin, cout, 3, padding=1), norm_layer(dims, norm, cout), nn.PReLU(),
            conv(cout, cout, 3, padding=1), norm_layer(dims, norm, cout), nn.PReLU(),
            conv(cout, cout, 1), norm_layer(dims, norm, cout), nn.PReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(x)
