"""Context heads on a shared dilated backbone: criss-cross attention (CCNet) and object-contextual
representations (OCR).

- ``ccnet``: Huang et al., CCNet, ICCV 2019. Each criss-cross attention (CCA) pass lets a pixel attend to
  its row and column; applying the same module R=2 times (recurrent CCA) gives every pixel a path to
  every other pixel at O(HW(H+W)) cost instead of O((HW)^2).
- ``ocrnet``: Yuan et al., Object-contextual representations, ECCV 2020. A soft segmentation (the
  auxiliary head) pools pixel features into one representation per class; each pixel is then augmented
  with a relation-weighted mix of these object representations. In training mode the soft segmentation
  is returned as the deep-supervision output (the paper puts a weighted cross-entropy on it).

Both default to a dilated ResNet-18 backbone at output stride 8 (``backbone="mobilenetv2"`` also works).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import ModelCard
from medseg.models._backbones2d import build_backbone, conv_bn_act
from medseg.models._registry import register_model
from medseg.models.deeplab import card_2d


class CrissCrossAttention(nn.Module):
    """One criss-cross pass: out[p] = x[p] + gamma * sum over p's row and column of softmax(q.k) * v."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        key = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, key, 1)
        self.key = nn.Conv2d(channels, key, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))  # starts as identity, as in the paper's code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        h = x.shape[2]
        e_col = torch.einsum("bchw,bcgw->bhwg", q, k)  # same column, every row g
        self_mask = torch.eye(h, dtype=torch.bool, device=x.device).view(1, h, 1, h)
        e_col = e_col.masked_fill(self_mask, float("-inf"))  # the pixel itself is counted once, in its row
        e_row = torch.einsum("bchw,bchv->bhwv", q, k)  # same row, every column v
        attn = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)
        a_col, a_row = attn[..., :h], attn[..., h:]
        out = torch.einsum("bhwg,bcgw->bchw", a_col, v) + torch.einsum("bhwv,bchv->bchw", a_row, v)
        return x + self.gamma * out


class CCNet(nn.Module):
    """Backbone -> 3x3 reduce -> recurrent CCA (shared weights, R passes) -> concat with input -> classifier."""

    head_prefixes = ("classifier.",)
    encoder_prefixes = ("backbone.",)
    stem_keys = ("backbone.stem.0.0.weight",)

    def __init__(self, in_channels: int, out_channels: int, *, recurrence: int = 2, channels: int = 128,
                 backbone: str = "resnet", output_stride: int = 8, layers: Sequence[int] = (2, 2, 2, 2),
                 base: int = 64, width: float = 1.0) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, in_channels, output_stride, width=width, layers=layers, base=base)
        cin = self.backbone.high_channels
        self.recurrence = recurrence
        self.reduce = conv_bn_act(cin, channels, 3)
        self.cca = CrissCrossAttention(channels)
        self.post = conv_bn_act(channels, channels, 3)
        self.bottleneck = nn.Sequential(conv_bn_act(cin + channels, channels, 3), nn.Dropout2d(0.1))
        self.classifier = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, high = self.backbone(x)
        y = self.reduce(high)
        for _ in range(self.recurrence):
            y = self.cca(y)
        y = self.bottleneck(torch.cat([high, self.post(y)], dim=1))
        return F.interpolate(self.classifier(y), size=x.shape[2:], mode="bilinear", align_corners=False)


class OCRNet(nn.Module):
    """Backbone -> soft object regions -> object representations -> pixel-region relation -> classifier."""

    head_prefixes = ("classifier.", "aux_head.3.")
    encoder_prefixes = ("backbone.",)
    stem_keys = ("backbone.stem.0.0.weight",)

    def __init__(self, in_channels: int, out_channels: int, *, channels: int = 128, key_channels: int = 64,
                 backbone: str = "resnet", output_stride: int = 8, layers: Sequence[int] = (2, 2, 2, 2),
                 base: int = 64, width: float = 1.0) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, in_channels, output_stride, width=width, layers=layers, base=base)
        cin = self.backbone.high_channels
        self.aux_head = nn.Sequential(*conv_bn_act(cin, channels, 3), nn.Conv2d(channels, out_channels, 1))
        self.pixel = conv_bn_act(cin, channels, 3)
        self.query = nn.Sequential(conv_bn_act(channels, key_channels, 1), conv_bn_act(key_channels, key_channels, 1))
        self.key = nn.Sequential(conv_bn_act(channels, key_channels, 1), conv_bn_act(key_channels, key_channels, 1))
        self.value = conv_bn_act(channels, key_channels, 1)
        self.up = conv_bn_act(key_channels, channels, 1)
        self.fuse = nn.Sequential(conv_bn_act(2 * channels, channels, 1), nn.Dropout2d(0.05))
        self.classifier = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        _, high = self.backbone(x)
        aux = self.aux_head(high)                                    # (B, K, h, w) soft object regions
        feats = self.pixel(high)                                     # (B, C, h, w)
        b, _, h, w = feats.shape
        regions = torch.softmax(aux.flatten(2), dim=2)               # each class: a distribution over pixels
        objects = torch.einsum("bkn,bcn->bck", regions, feats.flatten(2)).unsqueeze(-1)  # (B, C, K, 1)
        q = self.query(feats).flatten(2)                              # (B, D, N)
        k = self.key(objects).flatten(2)                              # (B, D, K)
        sim = torch.softmax(torch.einsum("bdn,bdk->bnk", q, k) / k.shape[1] ** 0.5, dim=-1)
        context = torch.einsum("bnk,bdk->bdn", sim, self.value(objects).flatten(2)).view(b, -1, h, w)
        y = self.fuse(torch.cat([self.up(context), feats], dim=1))
        logits = F.interpolate(self.classifier(y), size=x.shape[2:], mode="bilinear", align_corners=False)
        return (logits, aux) if self.training else logits


def build_ccnet(card: ModelCard, *, recurrence: int = 2, channels: int = 128, backbone: str = "resnet",
                output_stride: int = 8, layers: Sequence[int] = (2, 2, 2, 2), base: int = 64,
                width: float = 1.0) -> CCNet:
    """CCNet with recurrent criss-cross attention (R=2 by default) on a dilated backbone."""
    return CCNet(card.in_channels, card.out_channels, recurrence=recurrence, channels=channels, backbone=backbone,
                 output_stride=output_stride, layers=tuple(layers), base=base, width=width)


def build_ocrnet(card: ModelCard, *, channels: int = 128, key_channels: int = 64, backbone: str = "resnet",
                 output_stride: int = 8, layers: Sequence[int] = (2, 2, 2, 2), base: int = 64,
                 width: float = 1.0) -> OCRNet:
    """OCR head on a dilated backbone; training mode also returns the soft object regions (deep supervision)."""
    return OCRNet(card.in_channels, card.out_channels, channels=channels, key_channels=key_channels,
                  backbone=backbone, output_stride=output_stride, layers=tuple(layers), base=base, width=width)


_TINY = {"roi_size": (64, 64), "base": 8, "layers": (1, 1, 1, 1), "channels": 16}
register_model(card_2d("ccnet", "CCNet: recurrent criss-cross attention (R=2) on a dilated ResNet-18, stride 8",
                       "Huang et al., CCNet: Criss-cross attention for semantic segmentation, ICCV 2019"),
               test_overrides=_TINY)(build_ccnet)
register_model(card_2d("ocrnet", "Object-contextual representations head on a dilated ResNet-18, stride 8",
                       "Yuan et al., Object-contextual representations for semantic segmentation, ECCV 2020",
                       deep_supervision=1),
               test_overrides={**_TINY, "key_channels": 8})(build_ocrnet)
