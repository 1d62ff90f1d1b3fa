"""STU-Net (Huang et al. 2023): nnU-Net scaled to S/B/L/H with residual blocks and transferable upsampling.

The module and parameter names follow the official release (``conv_blocks_context``,
``upsample_layers``, ``conv_blocks_localization``, ``seg_outputs``) so official checkpoints load by name.

- Residual block: conv3-IN-LReLU, conv3-IN, plus a 1x1x1 (strided) shortcut without norm in the first
  block of each stage; biased convs, affine instance norm, LeakyReLU(0.01).
- Down-sampling: stride-2 convolutions. Up-sampling: nearest interpolation then a 1x1x1 conv, so weights
  do not depend on the plan's strides.
- Deep supervision (training mode): full-resolution logits first, then each lower decoder level.

Official checkpoints load with :func:`medseg.models.load_official_stunet` (``_stunet_import``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import Intensity, ModelCard, Pretrained, shipped_quality
from medseg.models._labels import TOTALSEG_V1_SORTED
from medseg.models._registry import register_model


class BasicResBlock(nn.Module):
    """Residual block with official names: conv1/norm1, conv2/norm2 and the optional shortcut conv3."""

    def __init__(self, cin: int, cout: int, stride: int | tuple[int, int, int] = 1, proj: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1)
        self.norm1 = nn.InstanceNorm3d(cout, affine=True)
        self.act1 = nn.LeakyReLU(inplace=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1)
        self.norm2 = nn.InstanceNorm3d(cout, affine=True)
        self.act2 = nn.LeakyReLU(inplace=True)
        self.conv3 = nn.Conv3d(cin, cout, 1, stride=stride) if proj else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = self.conv3(x) if self.conv3 is not None else x
        return self.act2(y + shortcut)


class UpsampleLayer(nn.Module):
    """Nearest-neighbour up-sampling by ``scale`` followed by a 1x1x1 convolution."""

    def __init__(self, cin: int, cout: int, scale: Sequence[int]) -> None:
        super().__init__()
        self.scale = tuple(int(s) for s in scale)
        self.conv = nn.Conv3d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s != 1 for s in self.scale):
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.conv(x)


def _stage(cin: int, cout: int, blocks: int, stride) -> nn.Sequential:
    layers = [BasicResBlock(cin, cout, stride=stride, proj=True)]
    layers += [BasicResBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class STUNet(nn.Module):
    """STU-Net with any number of stages.

    Args:
        in_channels: input channels.
        num_classes: output channels (logits; no softmax is applied).
        dims: channels per resolution stage, e.g. ``[32, 64, 128, 256, 512, 512]`` for size B.
        depth: residual blocks per stage (encoder and decoder).
        strides: down-sampling stride between consecutive stages (``len(dims) - 1`` entries).
        deep_supervision: in training mode return one logit map per decoder level, high to low resolution.
    """

    head_prefixes = ("seg_outputs.",)
    encoder_prefixes = ("conv_blocks_context.",)
    stem_keys = ("conv_blocks_context.0.0.conv1.weight", "conv_blocks_context.0.0.conv3.weight")

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dims: Sequence[int] = (32, 64, 128, 256, 512, 512),
        depth: Sequence[int] | int = 1,
        strides: Sequence[Sequence[int]] | None = None,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        n = len(dims)
        depth = [depth] * n if isinstance(depth, int) else list(depth)
        strides = [(2, 2, 2)] * (n - 1) if strides is None else [tuple(s) for s in strides]
        if len(strides) != n - 1 or len(depth) != n:
            raise ValueError(f"STUNet: {n} stages need {n - 1} strides and {n} depths")
        self.strides = strides
        self.deep_supervision = deep_supervision
        self.conv_blocks_context = nn.ModuleList(
            [_stage(in_channels, dims[0], depth[0], 1)]
            + [_stage(dims[k - 1], dims[k], depth[k], strides[k - 1]) for k in range(1, n)]
        )
        self.upsample_layers = nn.ModuleList(
            [UpsampleLayer(dims[n - 1 - u], dims[n - 2 - u], strides[n - 2 - u]) for u in range(n - 1)]
        )
        self.conv_blocks_localization = nn.ModuleList(
            [_stage(2 * dims[n - 2 - u], dims[n - 2 - u], depth[n - 2 - u], 1) for u in range(n - 1)]
        )
        self.seg_outputs = nn.ModuleList([nn.Conv3d(dims[n - 2 - u], num_classes, 1) for u in range(n - 1)])
        self.apply(_init_he)

    @property
    def divisor(self) -> tuple[int, int, int]:
        """The input size must be a multiple of this along each axis."""
        total = [1, 1, 1]
        for s in self.strides:
            total = [t * int(v) for t, v in zip(total, s)]
        return total[0], total[1], total[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        skips = []
        for stage in self.conv_blocks_context[:-1]:
            x = stage(x)
            skips.append(x)
        x = self.conv_blocks_context[-1](x)
        want_all = self.deep_supervision and self.training
        outputs = []
        for u, (up, block) in enumerate(zip(self.upsample_layers, self.conv_blocks_localization)):
            x = block(torch.cat([up(x), skips[-(u + 1)]], dim=1))
            if want_all or u == len(self.upsample_layers) - 1:
                outputs.append(self.seg_outputs[u](x))
        if want_all:
            return tuple(outputs[::-1])
        return outputs[-1]


def _init_he(module: nn.Module) -> None:
    """nnU-Net's InitWeights_He(1e-2): kaiming-normal conv weights, zero biases."""
    if isinstance(module, nn.Conv3d):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


_SIZES = {  # name: (C0, blocks per stage); widths C0 x [1, 2, 4, 8, 16, 16]
    "s": (16, 1),
    "b": (32, 1),
    "l": (64, 2),
    "h": (96, 3),
}
_TOTALSEG_POOLS = ((2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 1, 2))
# nnU-Net v1 feeds SimpleITK's array, voxel axes reversed (k, j, i), and STU-Net's plans have
# transpose_forward [0, 1, 2]: for the canonical (RAS-stored) TotalSegmentator files that is (S, A, R), so
# the last (1, 1, 2) pooling halves the left-right axis. Feeding (R, A, S) would put it on the
# cranio-caudal axis and change every output (tests/models/test_stunet_parity.py).
_TOTALSEG_ORIENTATION = "SAR"
_WORD = {"s": "small", "b": "base", "l": "large", "h": "huge"}
# mean DSC on the TotalSegmentator test set: H from the project page, S/B/L read off the paper's figure
_TOTALSEG_DSC = {"s": ("totalseg_test_mean_dsc_from_figure", 0.837), "b": ("totalseg_test_mean_dsc_from_figure", 0.871),
                 "l": ("totalseg_test_mean_dsc_from_figure", 0.887), "h": ("totalseg_test_mean_dsc", 0.9006)}
_REFERENCE = "Huang et al., STU-Net, arXiv 2304.06716 (2023); code: uni-medical/STU-Net"


def _totalseg_card(size: str) -> ModelCard:
    metric, value = _TOTALSEG_DSC[size]
    return ModelCard(
        name=f"stunet_{size}",
        spatial_dims=3,
        in_channels=1,
        out_channels=105,
        labels=("background",) + TOTALSEG_V1_SORTED,
        channel_names=("CT",),
        roi_size=(128, 128, 128),
        spacing=(1.5, 1.5, 1.5),
        orientation=_TOTALSEG_ORIENTATION,
        intensity=Intensity("zscore"),  # nnU-Net 'nonCT': per-image z-score, no CT window
        divisible_by=32,
        deep_supervision=4,
        modality="CT",
        description=f"STU-Net-{size.upper()} (Huang et al. 2023) in the TotalSegmentator configuration",
        reference=_REFERENCE,
        pretrained=(
            Pretrained(
                tag="totalseg", file=f"{_WORD[size]}_ep4k.model", sha256=None,
                license="Apache-2.0 (uni-medical/STU-Net repository LICENSE; no separate weights licence stated)",
                data="TotalSegmentator v1 (1204 CTs, 104 classes), 4000 epochs, nnU-Net v1 plans",
                metrics={metric: value}, url="https://github.com/uni-medical/STU-Net#pre-trained-models",
                format="nnunet",
                note="official nnU-Net v1 checkpoint from the STU-Net README (Google Drive / Baidu)",
            ),
        ),
    )


def _stride_divisor(strides) -> int:
    """The smallest size every axis can be padded to: lcm over axes of the product of strides."""
    import math

    per_axis = [math.prod(int(s[a]) for s in strides) for a in range(3)]
    return math.lcm(*per_axis)


def _finalize(card: ModelCard, kwargs) -> ModelCard:
    divisor = _stride_divisor(kwargs.get("strides", _TOTALSEG_POOLS))
    return card if card.divisible_by == divisor else card.replace(divisible_by=divisor)


def _build_size(size: str):
    c0, blocks = _SIZES[size]

    def build(card: ModelCard, *, strides=_TOTALSEG_POOLS, width: int | None = None) -> nn.Module:
        base = width or c0
        return STUNet(card.in_channels, card.out_channels, dims=[base * m for m in (1, 2, 4, 8, 16, 16)],
                      depth=blocks, strides=strides, deep_supervision=card.deep_supervision > 0)

    build.__doc__ = (f"STU-Net-{size.upper()}: C0={c0}, {blocks} residual block(s) per stage; "
                     "``strides``: 5 down-sampling strides; ``width``: other C0 (custom sizes, tests).")
    return build


# tests: 32x32x64 is the smallest ROI the TotalSegmentator strides allow with >1 voxel at the bottleneck
# (exact widths are checked by parameter count on the meta device)
_TEST = {"roi_size": (32, 32, 64), "width": 4}
for _size in _SIZES:
    register_model(_totalseg_card(_size), test_overrides=_TEST, finalize_card=_finalize)(_build_size(_size))


HIPPOCAMPUS_CARD = ModelCard(
    name="stunet_t",
    spatial_dims=3,
    in_channels=1,
    out_channels=3,
    labels=("background", "anterior", "posterior"),
    channel_names=("MRI",),
    roi_size=(40, 56, 40),
    spacing=(1.0, 1.0, 1.0),
    intensity=Intensity("zscore"),
    divisible_by=8,
    deep_supervision=2,
    modality="MRI",
    description="STU-Net-T: a 4-stage STU-Net (C0=16, 1 block per stage) for small crops such as MSD hippocampus",
    pretrained=(
        Pretrained(
            tag="hippocampus",
            file="stunet_t_hippocampus.safetensors",
            sha256="06fc799e8133cf4f3e1b8589ea8ce5b400c5c1bf72334d4d328dfb578a117815",
            license="CC-BY-SA-4.0",
            data="MSD Task04 Hippocampus (MR, Vanderbilt): 160 training / 40 validation cases "
                 "(every 5th case of ../shared/data/msd_hippocampus held out)",
            metrics={"val_dice_anterior": 0.8890, "val_dice_posterior": 0.8724, "val_dice_mean": 0.8807,
                     "val_dice_mean_no_tta": 0.8775},
            note="pipelines/hippocampus/stunet_t.toml; card: pretrained/stunet_t_hippocampus.md",
            # what these weights were made for: MSD hippocampus crops, largest extent 40-59 mm (all 200
            # training cases); z-score after a 0.5-99.5 percentile clip, so one outlier voxel cannot
            # flatten the image (medseg.inference.preflight, benchmarks/intensity_outliers.py)
            # quality: training reference + calibration of the per-structure quality estimate, stored in
            # the weights' export JSON (python -m medseg.quality.fit; pretrained/stunet_t_hippocampus.md)
            card={"field_of_view_mm": (40.0, 60.0),
                  "intensity": Intensity("zscore", low=0.5, high=99.5),
                  "quality": shipped_quality("stunet_t_hippocampus.safetensors")},
        ),
    ),
    reference=_REFERENCE,
)


@register_model(HIPPOCAMPUS_CARD)
def build_stunet_t(card: ModelCard, *, deep_supervision: bool | None = None, width: int = 16) -> nn.Module:
    """STU-Net-T: dims width x [1, 2, 4, 8], three stride-2 down-samplings, one block per stage.

    Deep supervision follows ``card.deep_supervision`` unless ``deep_supervision`` is given.
    """
    ds = card.deep_supervision > 0 if deep_supervision is None else deep_supervision
    return STUNet(card.in_channels, card.out_channels, dims=[width * m for m in (1, 2, 4, 8)], depth=1,
                  strides=[(2, 2, 2)] * 3, deep_supervision=ds)
