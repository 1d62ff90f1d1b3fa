"""2D backbones for the segmentation heads (our own code; torchvision is not a dependency).

Both return ``(low, high)``: ``low`` at 1/4 of the input (for decoders that need edges) and ``high`` at
1/``output_stride`` (8 or 16). Past the target stride, down-sampling strides become dilations, as in
DeepLabv3 ("atrous" backbones), so the receptive field keeps growing without losing resolution.

- :class:`MobileNetV2`: inverted residual blocks with linear bottlenecks (Sandler et al., CVPR 2018).
- :class:`DilatedResNet`: basic-block ResNet (He et al. 2016) with dilated last stages.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# (expansion t, channels c, repeats n, stride s) of MobileNetV2, Table 2 of the paper.
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


def _divisible(value: float, divisor: int = 8) -> int:
    """Round channel counts to a multiple of ``divisor`` (never below 90 % of the value), as MobileNet does."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """conv (no bias, 'same' padding for odd kernels) -> batch norm -> optional activation."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel // 2),
                                         dilation=dilation, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection (no activation: the linear bottleneck)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(cin, hidden, 1, act=nn.ReLU6))
        layers += [conv_bn_act(hidden, hidden, 3, stride, dilation, groups=hidden, act=nn.ReLU6),
                   conv_bn_act(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 feature extractor (no classifier) with an output stride of 8 or 16."""

    def __init__(self, in_channels: int = 3, width: float = 1.0, output_stride: int = 16,
                 settings: Sequence[tuple[int, int, int, int]] = MOBILENET_V2) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        cin = _divisible(32 * width)
        self.stem = conv_bn_act(in_channels, cin, 3, 2, act=nn.ReLU6)
        stride, dilation = 2, 1
        blocks: list[nn.Module] = []
        self.low_index = -1
        for t, c, n, s in settings:
            cout = _divisible(c * width)
            for i in range(n):
                step = s if i == 0 else 1
                if step > 1 and stride * step > output_stride:
                    block_dilation, dilation, step = dilation, dilation * step, 1
                else:
                    block_dilation = dilation
                    stride *= step
                blocks.append(InvertedResidual(cin, cout, step, t, block_dilation))
                cin = cout
            if stride == 4:
                self.low_index = len(blocks) - 1  # last block at 1/4: the low-level features
        self.blocks = nn.ModuleList(blocks)
        self.low_channels = _divisible(settings[1][1] * width)
        self.high_channels = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        low = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.low_index:
                low = x
        return low, x


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with identity (or 1x1 projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(cin, cout, 3, stride, dilation)
        self.conv2 = conv_bn_act(cout, cout, 3, 1, dilation, act=None)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else conv_bn_act(cin, cout, 1, stride, act=None))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class DilatedResNet(nn.Module):
    """Basic-block ResNet (18: layers 2,2,2,2; 34: 3,4,6,3) whose last stages dilate instead of striding."""

    def __init__(self, in_channels: int = 3, layers: Sequence[int] = (2, 2, 2, 2), base: int = 64,
                 output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.stem = nn.Sequential(conv_bn_act(in_channels, base, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin, stride, dilation = [], base, 4, 1
        for i, n in enumerate(layers):
            cout = base * 2 ** i
            step = 1 if i == 0 else 2
            if step > 1 and stride * step > output_stride:
                first_dilation, dilation, step = dilation, dilation * step, 1
            else:
                first_dilation = dilation
                stride *= step
            blocks = [BasicBlock(cin, cout, step, first_dilation)]
            blocks += [BasicBlock(cout, cout, 1, dilation) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.low_channels = base
        self.high_channels = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        low = x = self.stages[0](x)
        for stage in self.stages[1:]:
            x = stage(x)
        return low, x


def build_backbone(kind: str, in_channels: int, output_stride: int, *, width: float = 1.0,
                   layers: Sequence[int] = (2, 2, 2, 2), base: int = 64) -> MobileNetV2 | DilatedResNet:
    """``"mobilenetv2"`` (``width`` multiplier) or ``"resnet"`` (``layers``, ``base`` channels)."""
    if kind == "mobilenetv2":
        return MobileNetV2(in_channels, width, output_stride)
    if kind == "resnet":
        return DilatedResNet(in_channels, layers, base, output_stride)
    raise ValueError(f"unknown backbone {kind!r}; use 'mobilenetv2' or 'resnet'")
