"""DeepLabv3+ (Chen et al., ECCV 2018): atrous spatial pyramid pooling (ASPP) + a light decoder.

Two zoo entries share the head:

- ``deeplabv3plus_mobilenetv2``: "Mobile DeepLabv3" - MobileNetV2 backbone (inverted residuals, linear
  bottlenecks), output stride 16.
- ``deeplabv3plus_resnet``: dilated ResNet-18 backbone, output stride 8 (atrous rates doubled).

ASPP = a 1x1 branch, three 3x3 atrous branches (rates 6/12/18 at stride 16, 12/24/36 at stride 8) and an
image-pooling branch, concatenated and projected. The decoder upsamples ASPP by 4, concatenates the
1x1-reduced 1/4 features, refines with two 3x3 convs and upsamples to the input.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import Intensity, ModelCard
from medseg.models._backbones2d import build_backbone, conv_bn_act
from medseg.models._registry import register_model


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling; output has the input's spatial size and ``channels`` channels."""

    def __init__(self, cin: int, channels: int = 256, rates: Sequence[int] = (6, 12, 18), dropout: float = 0.1) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_act(cin, channels, 1)] +
                                      [conv_bn_act(cin, channels, 3, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, channels, 1, bias=False), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn_act(channels * (len(rates) + 2), channels, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[2:]))  # no BN on a 1x1 map (batch of one works)
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3Plus(nn.Module):
    """Backbone -> ASPP -> decoder with 1/4 low-level features -> logits at the input size."""

    head_prefixes = ("classifier.",)
    encoder_prefixes = ("backbone.",)
    stem_keys = ("backbone.stem.0.0.weight", "backbone.stem.0.weight")

    def __init__(self, in_channels: int, out_channels: int, *, backbone: str = "mobilenetv2", output_stride: int = 16,
                 aspp_channels: int = 256, low_channels: int = 48, width: float = 1.0,
                 layers: Sequence[int] = (2, 2, 2, 2), base: int = 64) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, in_channels, output_stride, width=width, layers=layers, base=base)
        scale = 16 // output_stride
        self.aspp = ASPP(self.backbone.high_channels, aspp_channels, tuple(r * scale for r in (6, 12, 18)))
        self.reduce = conv_bn_act(self.backbone.low_channels, low_channels, 1)
        self.decoder = nn.Sequential(conv_bn_act(aspp_channels + low_channels, aspp_channels, 3),
                                     conv_bn_act(aspp_channels, aspp_channels, 3))
        self.classifier = nn.Conv2d(aspp_channels, out_channels, 1)
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(x)
        y = F.interpolate(self.aspp(high), size=low.shape[2:], mode="bilinear", align_corners=False)
        y = self.decoder(torch.cat([y, self.reduce(low)], dim=1))
        return F.interpolate(self.classifier(y), size=x.shape[2:], mode="bilinear", align_corners=False)


def _builder(backbone: str, default_stride: int):
    def build(card: ModelCard, *, output_stride: int = default_stride, aspp_channels: int = 256,
              low_channels: int = 48, width: float = 1.0, layers: Sequence[int] = (2, 2, 2, 2),
              base: int = 64) -> DeepLabV3Plus:
        return DeepLabV3Plus(card.in_channels, card.out_channels, backbone=backbone, output_stride=output_stride,
                             aspp_channels=aspp_channels, low_channels=low_channels, width=width,
                             layers=tuple(layers), base=base)

    build.__doc__ = f"DeepLabv3+ on {backbone}; output_stride 8 or 16 (default {default_stride})."
    return build


def card_2d(name: str, description: str, reference: str, **changes) -> ModelCard:
    """The generic 2D binary card the 2D zoo models share (override labels / channels per task)."""
    base = ModelCard(
        name=name, spatial_dims=2, in_channels=1, out_channels=2, labels=("background", "foreground"),
        activation="softmax", roi_size=(256, 256), intensity=Intensity("minmax"), divisible_by=16,
        slice_axis=2, mirror_axes=(0, 1), description=description, reference=reference,
    )
    return base.replace(**changes) if changes else base


_REF = "Chen et al., Encoder-decoder with atrous separable convolution (DeepLabv3+), ECCV 2018"
register_model(card_2d("deeplabv3plus_mobilenetv2",
                       "DeepLabv3+ with ASPP on a MobileNetV2 backbone (Mobile DeepLabv3), output stride 16",
                       _REF + "; Sandler et al., MobileNetV2, CVPR 2018"),
               test_overrides={"roi_size": (64, 64), "width": 0.25, "aspp_channels": 16, "low_channels": 8}
               )(_builder("mobilenetv2", 16))
register_model(card_2d("deeplabv3plus_resnet",
                       "DeepLabv3+ with ASPP on a dilated ResNet-18 backbone, output stride 8", _REF),
               test_overrides={"roi_size": (64, 64), "base": 8, "layers": (1, 1, 1, 1), "aspp_channels": 16,
                               "low_channels": 8})(_builder("resnet", 8))
