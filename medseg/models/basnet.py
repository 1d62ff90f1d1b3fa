"""BASNet: boundary-aware predict-refine network (Qin et al., CVPR 2019), binary segmentation.

- Predict module: a ResNet-34-style encoder (basic blocks 3,4,6,3 at 64..512 channels, no stem
  down-sampling) plus two extra 512-channel stages, a dilated bridge, and a U-Net decoder with a side
  output (3x3 conv to one logit map, upsampled to the input) at the bridge and at every decoder stage.
- Residual refinement module (RRM): a small 4-level encoder-decoder on the coarse map that predicts a
  residual, ``refined = coarse + RRM(coarse)``.

Eval returns the refined logits; training mode returns ``(refined, coarse, side_1, ..., side_6)``, all at
input size (deep supervision: the paper applies the hybrid loss of
:mod:`medseg.training.basnet_loss` to each of the 8 maps with equal weight).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import ModelCard
from medseg.models._backbones2d import BasicBlock, conv_bn_act
from medseg.models._registry import register_model
from medseg.models.deeplab import card_2d


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x if x.shape[2:] == like.shape[2:] else F.interpolate(x, size=like.shape[2:], mode="bilinear",
                                                                 align_corners=False)


class RefineModule(nn.Module):
    """RRM: 4 pooled encoder levels + bottom conv + 4 decoder levels on a 1-channel map; returns the residual."""

    def __init__(self, channels: int = 64, levels: int = 4) -> None:
        super().__init__()
        self.inconv = nn.Conv2d(1, channels, 3, padding=1)
        self.enc = nn.ModuleList(conv_bn_act(channels, channels, 3) for _ in range(levels))
        self.bottom = conv_bn_act(channels, channels, 3)
        self.dec = nn.ModuleList(conv_bn_act(2 * channels, channels, 3) for _ in range(levels))
        self.out = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inconv(x)
        skips = []
        for enc in self.enc:
            y = enc(y)
            skips.append(y)
            y = F.max_pool2d(y, 2, ceil_mode=True)
        y = self.bottom(y)
        for dec, skip in zip(self.dec, reversed(skips)):
            y = dec(torch.cat([_up(y, skip), skip], dim=1))
        return self.out(y)


class BASNet(nn.Module):
    """Predict module (encoder, bridge, decoder with side outputs) followed by the residual refinement module."""

    head_prefixes = ("sides.", "refine.out.")
    encoder_prefixes = ("inconv.", "stages.")
    stem_keys = ("inconv.0.weight",)

    def __init__(self, in_channels: int, *, base: int = 64, layers: Sequence[int] = (3, 4, 6, 3, 3, 3),
                 refine_channels: int = 64) -> None:
        super().__init__()
        widths = [base * min(2 ** i, 8) for i in range(len(layers))]  # 64,128,256,512,512,512
        self.inconv = conv_bn_act(in_channels, base, 3)
        stages, cin = [], base
        for i, (n, c) in enumerate(zip(layers, widths)):
            stride = 2 if 0 < i < 4 else 1  # ResNet stages 2-4 stride; the extra stages max-pool first
            blocks = [BasicBlock(cin, c, stride, 1)] + [BasicBlock(c, c, 1, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = c
        self.stages = nn.ModuleList(stages)
        top = widths[-1]
        self.bridge = nn.Sequential(*(conv_bn_act(top, top, 3, dilation=2) for _ in range(3)))
        decoders, sides = [], [nn.Conv2d(top, 1, 3, padding=1)]
        for i in range(len(widths) - 1, -1, -1):
            cout = widths[i - 1] if i > 0 else widths[0]
            decoders.append(nn.Sequential(conv_bn_act(2 * widths[i], widths[i], 3), conv_bn_act(widths[i], widths[i], 3), conv_bn_act(widths[i], cout, 3)))
            sides.append(nn.Conv2d(cout, 1, 3, padding=1))
        self.decoders = nn.ModuleList(decoders)
        self.sides = nn.ModuleList(sides)
        self.refine = RefineModule(refine_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # channels-last inputs (e.g. an HWC image permuted to CHW) crash this torch build's CPU backward
        # somewhere in the pool/upsample chain; a contiguous copy is cheap and avoids it.
        x = x.contiguous()
        y = self.inconv(x)
        skips = []
        for i, stage in enumerate(self.stages):
            if i >= 4:
                y = F.max_pool2d(y, 2, ceil_mode=True)
            y = stage(y)
            skips.append(y)
        d = self.bridge(F.max_pool2d(y, 2, ceil_mode=True))
        maps = [self.sides[0](d)]
        for dec, side, skip in zip(self.decoders, self.sides[1:], reversed(skips)):
            d = dec(torch.cat([_up(d, skip), skip], dim=1))
            maps.append(side(d))
        maps = [_up(m, x) for m in maps]
        coarse = maps[-1]
        refined = coarse + self.refine(coarse)
        if not self.training:
            return refined
        return (refined, coarse, *maps[-2::-1])


def build_basnet(card: ModelCard, *, base: int = 64, layers: Sequence[int] = (3, 4, 6, 3, 3, 3),
                 refine_channels: int = 64) -> BASNet:
    """BASNet (paper configuration by default: ResNet-34 encoder + 2 extra stages, 64-channel RRM)."""
    return BASNet(card.in_channels, base=base, layers=tuple(layers), refine_channels=refine_channels)


register_model(card_2d("basnet", "BASNet predict-refine network (binary; sigmoid); train with the hybrid "
                       "BCE+SSIM+IoU loss (medseg.training.basnet_loss)",
                       "Qin et al., BASNet: Boundary-aware salient object detection, CVPR 2019",
                       out_channels=1, labels=("foreground",), activation="sigmoid",
                       divisible_by=64, deep_supervision=7),
               test_overrides={"roi_size": (128, 128), "base": 4, "layers": (1, 1, 1, 1, 1, 1),
                               "refine_channels": 4})(build_basnet)
