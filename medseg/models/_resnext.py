"""A native ResNeXt backbone (Xie et al. 2017) in 2D or 3D, returning the four stage outputs.

Layout and parameter names follow the common ResNet-family convention (``conv1``, ``bn1``,
``layer1..4``, bottlenecks with ``conv1/bn1/conv2/bn2/conv3/bn3`` and ``downsample.0/1``; stride in
the grouped 3x3 conv). ResNeXt-101 32x8d with a 1-channel stem and no classifier has 86,736,064
parameters, the backbone of the guided-attention network. No torchvision dependency.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def norm_layer(dims: int, kind: str, channels: int) -> nn.Module:
    """Batch norm (the original 2D network) or affine instance norm (small-batch 3D patches)."""
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    raise ValueError(f"norm must be 'batch' or 'instance', got {kind!r}")


class Bottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 (strided) -> 1x1 expand (x4), residual add, ReLU."""

    expansion = 4

    def __init__(self, dims: int, cin: int, planes: int, stride: int, groups: int, width_per_group: int,
                 norm: str) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        if width <= 0:
            raise ValueError(f"ResNeXt: planes={planes}, width_per_group={width_per_group} gives no channels")
        out = planes * self.expansion
        conv = _CONV[dims]
        self.conv1 = conv(cin, width, 1, bias=False)
        self.bn1 = norm_layer(dims, norm, width)
        self.conv2 = conv(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = norm_layer(dims, norm, width)
        self.conv3 = conv(width, out, 1, bias=False)
        self.bn3 = norm_layer(dims, norm, out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(conv(cin, out, 1, stride=stride, bias=False), norm_layer(dims, norm, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNeXt(nn.Module):
    """ResNeXt feature extractor: stem (7x7 stride 2) then layer1 (after 3x3 max-pool) .. layer4.

    Strides relative to the input: 1/4, 1/8, 1/16, 1/32; channels ``base_planes * 4 * [1, 2, 4, 8]``.
    """

    layer1: nn.Sequential  # set with setattr in __init__
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, dims: int = 2, in_channels: int = 1, layers: Sequence[int] = (3, 4, 23, 3),
                 groups: int = 32, width_per_group: int = 8, base_planes: int = 64, norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = _CONV[dims](in_channels, base_planes, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(dims, norm, base_planes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = _POOL[dims](kernel_size=3, stride=2, padding=1)
        cin = base_planes
        self.channels: list[int] = []
        for index, blocks in enumerate(layers):
            planes = base_planes * 2 ** index
            stride = 1 if index == 0 else 2
            stage = [Bottleneck(dims, cin, planes, stride, groups, width_per_group, norm)]
            cin = planes * Bottleneck.expansion
            stage += [Bottleneck(dims, cin, planes, 1, groups, width_per_group, norm) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
            self.channels.append(cin)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(x))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3, self.layer4(f3)]
