"""nnU-Net-style dynamic U-Nets (Isensee et al. 2021/2024): the topology comes from a plan, not a fixed list.

``plan_unet(patch, spacing)`` (:mod:`medseg.models._plan`) decides the number of stages, the per-axis
strides and kernels, the same way nnU-Net does; these builders turn the card's ``roi_size`` and
``spacing`` into that plan, so overriding either re-plans the network (and the card's ``roi_size``,
``divisible_by`` and ``deep_supervision`` are updated to match).

- ``plain``: two conv-IN-LeakyReLU per encoder and decoder stage, strided conv down-sampling,
  transposed-conv up-sampling (nnU-Net ``PlainConvUNet``).
- ``residual``: residual encoder with 1, 3, 4, 6, 6, ... basic blocks per stage and one conv per decoder
  stage (nnU-Net ``ResEncUNet``; average-pool + 1x1 conv shortcut when the shape changes).

Deep supervision returns one logit map per decoder stage, full resolution first (nnU-Net gives the lowest
one weight 0; that is the trainer's choice).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from medseg.core.card import Intensity, ModelCard
from medseg.models._plan import UNetPlan, plan_unet
from medseg.models._registry import register_model
from medseg.models._scse import SCSE

# Typed as ``type[nn.Module]``: torch's stubs give Conv2d/Conv3d ``int | tuple[int, int(, int)]`` sizes, which
# a dimension-generic ``tuple[int, ...]`` cannot satisfy.
_CONV: dict[int, type[nn.Module]] = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM: dict[int, type[nn.Module]] = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_TCONV: dict[int, type[nn.Module]] = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL: dict[int, type[nn.Module]] = {2: nn.AvgPool2d, 3: nn.AvgPool3d}
RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6)


class ConvNormAct(nn.Module):
    """conv (biased, 'same' padding) -> affine instance norm -> LeakyReLU(0.01)."""

    def __init__(self, dims: int, cin: int, cout: int, kernel: Sequence[int], stride: int | Sequence[int] = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = _CONV[dims](cin, cout, tuple(kernel), stride=stride, padding=tuple(k // 2 for k in kernel))
        self.norm = _NORM[dims](cout, affine=True, eps=1e-5)
        self.act = nn.LeakyReLU(0.01, inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class BasicBlockD(nn.Module):
    """Residual block: two ConvNormAct (second without activation) plus a pooled, projected shortcut."""

    def __init__(self, dims: int, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(dims, cin, cout, kernel, stride)
        self.conv2 = ConvNormAct(dims, cout, cout, kernel, act=False)
        layers: list[nn.Module] = []
        if any(s != 1 for s in stride):
            layers.append(_POOL[dims](tuple(stride), tuple(stride)))
        if cin != cout:
            layers += [_CONV[dims](cin, cout, 1, bias=False), _NORM[dims](cout, affine=True)]
        self.skip = nn.Sequential(*layers)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


class _Encoder(nn.Module):
    """Attribute holder (state-dict keys ``encoder.stem.*``, ``encoder.stages.*``); ``stem`` only when residual."""

    stem: ConvNormAct
    stages: nn.ModuleList


class _Decoder(nn.Module):
    """Attribute holder (state-dict keys ``decoder.transpconvs.*``, ``decoder.stages.*``, ``decoder.seg_layers.*``)."""

    transpconvs: nn.ModuleList
    stages: nn.ModuleList
    seg_layers: nn.ModuleList


class DynamicUNet(nn.Module):
    """A U-Net built from a :class:`UNetPlan`.

    Args:
        dims: 2 or 3.
        plan: strides / kernels / features per stage.
        residual: residual encoder (ResEnc) instead of plain conv stages.
        deep_supervision: in training mode return logits of every decoder stage, full resolution first.
        scse: append a concurrent spatial and channel squeeze-excitation block (Roy et al.) to every
            encoder and decoder stage.
    """

    head_prefixes = ("decoder.seg_layers.",)
    encoder_prefixes = ("encoder.",)
    stem_keys = ("encoder.stem.conv.weight", "encoder.stages.0.0.conv.weight")

    def __init__(self, dims: int, in_channels: int, out_channels: int, plan: UNetPlan, *, residual: bool = False,
                 deep_supervision: bool = True, scse: bool = False) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        f, k, s = plan.features, plan.kernels, plan.strides
        n = plan.num_stages
        self.encoder = _Encoder()
        stages: list[nn.Sequential] = []
        if residual:
            self.encoder.stem = ConvNormAct(dims, in_channels, f[0], k[0])
            for i in range(n):
                cin = f[0] if i == 0 else f[i - 1]
                blocks = [BasicBlockD(dims, cin, f[i], k[i], s[i])]
                blocks += [BasicBlockD(dims, f[i], f[i], k[i], (1,) * dims) for _ in range(RESENC_BLOCKS[min(i, 7)] - 1)]
                stages.append(nn.Sequential(*blocks))
        else:
            for i in range(n):
                cin = in_channels if i == 0 else f[i - 1]
                stages.append(nn.Sequential(ConvNormAct(dims, cin, f[i], k[i], s[i]), ConvNormAct(dims, f[i], f[i], k[i])))
        if scse:
            stages = [nn.Sequential(*stage, SCSE(dims, f[i])) for i, stage in enumerate(stages)]
        self.encoder.stages = nn.ModuleList(stages)
        convs_per_decoder_stage = 1 if residual else 2
        self.decoder = _Decoder()
        self.decoder.transpconvs = nn.ModuleList()
        self.decoder.stages = nn.ModuleList()
        self.decoder.seg_layers = nn.ModuleList()
        for level in range(n - 2, -1, -1):  # from just above the bottleneck to full resolution
            stride = s[level + 1]
            self.decoder.transpconvs.append(_TCONV[dims](f[level + 1], f[level], stride, stride=stride))
            convs: list[nn.Module] = [ConvNormAct(dims, 2 * f[level], f[level], k[level])]
            convs += [ConvNormAct(dims, f[level], f[level], k[level]) for _ in range(convs_per_decoder_stage - 1)]
            convs += [SCSE(dims, f[level])] if scse else []
            self.decoder.stages.append(nn.Sequential(*convs))
            self.decoder.seg_layers.append(_CONV[dims](f[level], out_channels, 1))
        self.apply(_init_he)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if hasattr(self.encoder, "stem"):
            x = self.encoder.stem(x)
        skips = []
        for stage in self.encoder.stages:
            x = stage(x)
            skips.append(x)
        want_all = self.deep_supervision and self.training
        outputs = []
        last = len(self.decoder.stages) - 1
        for u, (up, stage, seg) in enumerate(zip(self.decoder.transpconvs, self.decoder.stages, self.decoder.seg_layers)):
            x = stage(torch.cat([up(x), skips[-(u + 2)]], dim=1))
            if want_all or u == last:
                outputs.append(seg(x))
        return tuple(outputs[::-1]) if want_all else outputs[-1]


def _init_he(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _plan_for(card: ModelCard, kwargs: Mapping[str, Any]) -> UNetPlan:
    spacing = kwargs.get("plan_spacing") or (card.spacing if card.spatial_dims == 3 else None)
    return plan_unet(card.roi_size, spacing, base_features=kwargs.get("base_features", 32),
                     max_features=kwargs.get("max_features"), max_stages=kwargs.get("max_stages"))


def _finalize(card: ModelCard, kwargs: Mapping[str, Any]) -> ModelCard:
    plan = _plan_for(card, kwargs)
    ds = plan.num_stages - 2 if card.deep_supervision else 0
    return card.replace(roi_size=plan.patch_size, divisible_by=math.lcm(*plan.divisor), deep_supervision=ds)


def _builder(residual: bool):
    def build(card: ModelCard, *, base_features: int = 32, max_features: int | None = None,
              max_stages: int | None = None, plan_spacing: Sequence[float] | None = None,
              scse: bool = False) -> DynamicUNet:
        plan = _plan_for(card, {"base_features": base_features, "max_features": max_features,
                                "max_stages": max_stages, "plan_spacing": plan_spacing})
        return DynamicUNet(card.spatial_dims, card.in_channels, card.out_channels, plan, residual=residual,
                           deep_supervision=card.deep_supervision > 0, scse=scse)

    build.__doc__ = (f"nnU-Net {'residual-encoder' if residual else 'plain'} U-Net planned from roi_size and "
                     "spacing (or plan_spacing); base_features/max_features/max_stages as in nnU-Net.")
    return build


def _card(name: str, dims: Literal[2, 3], residual: bool) -> ModelCard:
    three = dims == 3
    return ModelCard(
        name=name,
        spatial_dims=dims,
        in_channels=1,
        out_channels=2,
        labels=("background", "foreground"),
        roi_size=(128, 128, 128) if three else (512, 512),
        spacing=(1.0, 1.0, 1.0) if three else None,
        intensity=Intensity("zscore"),
        divisible_by=32,
        deep_supervision=4 if three else 6,
        mirror_axes=(0, 1, 2) if three else (0, 1),
        description=(f"nnU-Net-style {'residual-encoder' if residual else 'plain'} {dims}D U-Net; set roi_size "
                     "and spacing (the dataset's median) to re-plan stages, strides and kernels"),
        reference="Isensee et al., nnU-Net, Nature Methods 2021; nnU-Net revisited (ResEnc), MICCAI 2024",
    )


_TEST = {3: {"roi_size": (16, 16, 16), "base_features": 4}, 2: {"roi_size": (32, 32), "base_features": 4}}
_VARIANTS: tuple[tuple[Literal[2, 3], str], ...] = ((3, ""), (2, "_2d"))
for _dims, _suffix in _VARIANTS:
    for _residual, _kind in ((False, "plain"), (True, "residual")):
        register_model(_card(f"nnunet_{_kind}{_suffix}", _dims, _residual), test_overrides=_TEST[_dims],
                       finalize_card=_finalize)(_builder(_residual))
