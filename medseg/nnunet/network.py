"""PlainConvUNet and ResidualEncoderUNet rebuilt from an nnU-Net v2 plans entry, with nnU-Net's own module
names so a fold's ``network_weights`` load strictly (every tensor matched, no key map).

This is our own implementation of the architectures of ``dynamic-network-architectures`` (the package nnU-Net
builds its networks with) as far as trained nnU-Net v2 folders use them: conv -> [dropout] -> norm -> nonlin
blocks (each block registers its conv and norm twice, as ``conv``/``norm`` and inside ``all_modules``), a
strided-conv encoder, transposed-conv decoder with one 1x1 segmentation layer per decoder stage (only the last
is used at inference) and, for ResEnc, a stem plus ResNet-D basic blocks (avg-pool + 1x1 conv skip).
Only data is read from the plans: layer types are looked up in a fixed table, never imported by name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medseg.core.errors import MedsegError

PLAIN = "PlainConvUNet"
RESENC = "ResidualEncoderUNet"

# dotted names nnU-Net writes into plans.json -> the torch class (a fixed table: nothing is imported by name)
_LAYERS: dict[str, type[nn.Module]] = {}
for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
             nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LeakyReLU, nn.ReLU, nn.PReLU, nn.ELU,
             nn.GELU, nn.SiLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d):
    for _name in (f"{_cls.__module__}.{_cls.__name__}", f"torch.nn.{_cls.__name__}"):
        _LAYERS[_name] = _cls


def layer_class(name: str | None, what: str) -> type[nn.Module] | None:
    """The torch layer class for a dotted name from plans.json (None stays None)."""
    if name is None:
        return None
    if not isinstance(name, str) or name not in _LAYERS:
        raise MedsegError(f"unsupported {what} {name!r} in plans.json",
                          hint=f"supported: {', '.join(sorted({n.rsplit('.', 1)[1] for n in _LAYERS}))}")
    return _LAYERS[name]


def _as_list(value: Any, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _spatial(conv_op: type[nn.Module], value: Any) -> list[int]:
    dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[conv_op]
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)] * dims


class ConvDropoutNormReLU(nn.Module):
    """conv -> [dropout] -> [norm] -> [nonlin] (``nonlin_first`` swaps the last two)."""

    def __init__(self, conv_op, cin: int, cout: int, kernel, stride, bias: bool, norm_op, norm_kwargs,
                 dropout_op, dropout_kwargs, nonlin, nonlin_kwargs, nonlin_first: bool = False) -> None:
        super().__init__()
        kernel, stride = _spatial(conv_op, kernel), _spatial(conv_op, stride)
        self.stride = stride
        ops: list[nn.Module] = []
        self.conv = conv_op(cin, cout, kernel, stride, padding=[(k - 1) // 2 for k in kernel], dilation=1, bias=bias)
        ops.append(self.conv)
        if dropout_op is not None:
            self.dropout = dropout_op(**(dropout_kwargs or {}))
            ops.append(self.dropout)
        if norm_op is not None:
            self.norm = norm_op(cout, **(norm_kwargs or {}))
            ops.append(self.norm)
        if nonlin is not None:
            self.nonlin = nonlin(**(nonlin_kwargs or {}))
            ops.append(self.nonlin)
        if nonlin_first and norm_op is not None and nonlin is not None:
            ops[-1], ops[-2] = ops[-2], ops[-1]
        self.all_modules = nn.Sequential(*ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    def __init__(self, n: int, conv_op, cin: int, cout: int, kernel, first_stride, bias, norm_op, norm_kwargs,
                 dropout_op, dropout_kwargs, nonlin, nonlin_kwargs, nonlin_first: bool = False) -> None:
        super().__init__()
        blocks = [ConvDropoutNormReLU(conv_op, cin, cout, kernel, first_stride, bias, norm_op, norm_kwargs,
                                      dropout_op, dropout_kwargs, nonlin, nonlin_kwargs, nonlin_first)]
        blocks += [ConvDropoutNormReLU(conv_op, cout, cout, kernel, 1, bias, norm_op, norm_kwargs, dropout_op,
                                       dropout_kwargs, nonlin, nonlin_kwargs, nonlin_first) for _ in range(1, n)]
        self.convs = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class BasicBlockD(nn.Module):
    """ResNet-D basic block: two convs, skip = avg-pool (if strided) + 1x1 conv + norm (if channels change)."""

    def __init__(self, conv_op, cin: int, cout: int, kernel, stride, bias, norm_op, norm_kwargs, dropout_op,
                 dropout_kwargs, nonlin, nonlin_kwargs) -> None:
        super().__init__()
        stride = _spatial(conv_op, stride)
        self.conv1 = ConvDropoutNormReLU(conv_op, cin, cout, kernel, stride, bias, norm_op, norm_kwargs,
                                         dropout_op, dropout_kwargs, nonlin, nonlin_kwargs)
        self.conv2 = ConvDropoutNormReLU(conv_op, cout, cout, kernel, 1, bias, norm_op, norm_kwargs,
                                         None, None, None, None)
        self.nonlin2 = nonlin(**(nonlin_kwargs or {})) if nonlin is not None else nn.Identity()
        ops: list[nn.Module] = []
        if any(s != 1 for s in stride):
            pool = {nn.Conv1d: nn.AvgPool1d, nn.Conv2d: nn.AvgPool2d, nn.Conv3d: nn.AvgPool3d}[conv_op]
            ops.append(pool(stride, stride))
        if cin != cout:
            ops.append(ConvDropoutNormReLU(conv_op, cin, cout, 1, 1, False, norm_op, norm_kwargs,
                                           None, None, None, None))
        self.skip = nn.Sequential(*ops) if ops else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.skip(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.nonlin2(out)


class StackedResidualBlocks(nn.Module):
    def __init__(self, n: int, conv_op, cin: int, cout: int, kernel, first_stride, *args) -> None:
        super().__init__()
        self.blocks = nn.Sequential(BasicBlockD(conv_op, cin, cout, kernel, first_stride, *args),
                                    *[BasicBlockD(conv_op, cout, cout, kernel, 1, *args) for _ in range(1, n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class _Encoder(nn.Module):
    def __init__(self, kind: str, cin: int, kw: dict) -> None:
        super().__init__()
        n = int(kw["n_stages"])
        features = _as_list(kw["features_per_stage"], n)
        kernels, strides = _as_list(kw["kernel_sizes"], n), _as_list(kw["strides"], n)
        self.conv_op = kw["conv_op"]
        self.output_channels, self.kernel_sizes = features, kernels
        self.strides = [_spatial(self.conv_op, s) for s in strides]
        common = (kw.get("conv_bias", False), kw.get("norm_op"), kw.get("norm_op_kwargs"), kw.get("dropout_op"),
                  kw.get("dropout_op_kwargs"), kw.get("nonlin"), kw.get("nonlin_kwargs"))
        self.common = common
        stages: list[nn.Module] = []
        if kind == PLAIN:
            convs = _as_list(kw["n_conv_per_stage"], n)
            for s in range(n):
                stages.append(nn.Sequential(StackedConvBlocks(convs[s], self.conv_op, cin, features[s], kernels[s],
                                                              strides[s], *common, kw.get("nonlin_first", False))))
                cin = features[s]
            self.stem = None
        else:
            blocks = _as_list(kw["n_blocks_per_stage"], n)
            stem = kw.get("stem_channels") or features[0]
            self.stem = StackedConvBlocks(1, self.conv_op, cin, stem, kernels[0], 1, *common)
            cin = stem
            for s in range(n):
                stages.append(StackedResidualBlocks(blocks[s], self.conv_op, cin, features[s], kernels[s],
                                                    strides[s], *common))
                cin = features[s]
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.stem is not None:
            x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class _Decoder(nn.Module):
    def __init__(self, encoder: _Encoder, num_classes: int, n_conv: Sequence[int] | int, nonlin_first: bool) -> None:
        super().__init__()
        self.encoder = encoder  # registered as in nnU-Net: its weights appear twice in the state dict
        n = len(encoder.output_channels)
        n_conv = _as_list(n_conv, n - 1)
        transp = {nn.Conv1d: nn.ConvTranspose1d, nn.Conv2d: nn.ConvTranspose2d,
                  nn.Conv3d: nn.ConvTranspose3d}[encoder.conv_op]
        bias = encoder.common[0]
        stages, transpconvs, seg_layers = [], [], []
        for s in range(1, n):
            below, skip = encoder.output_channels[-s], encoder.output_channels[-(s + 1)]
            stride = encoder.strides[-s]
            transpconvs.append(transp(below, skip, stride, stride, bias=bias))
            stages.append(StackedConvBlocks(n_conv[s - 1], encoder.conv_op, 2 * skip, skip,
                                            encoder.kernel_sizes[-(s + 1)], 1, *encoder.common, nonlin_first))
            seg_layers.append(encoder.conv_op(skip, num_classes, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        x = skips[-1]
        for s in range(len(self.stages)):
            x = self.transpconvs[s](x)
            x = torch.cat((x, skips[-(s + 2)]), 1)
            x = self.stages[s](x)
        return self.seg_layers[-1](x)


class NnUNetNetwork(nn.Module):
    """The U-Net of one nnU-Net v2 configuration (deep supervision off: returns the full-resolution logits)."""

    def __init__(self, kind: str, in_channels: int, num_classes: int, kwargs: dict) -> None:
        super().__init__()
        self.kind = kind
        self.encoder = _Encoder(kind, in_channels, kwargs)
        nonlin_first = kwargs.get("nonlin_first", False) if kind == PLAIN else False
        self.decoder = _Decoder(self.encoder, num_classes, kwargs["n_conv_per_stage_decoder"], nonlin_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def trace_window(self, roi: Sequence[int]) -> tuple[int, ...]:
        """Where an ONNX export may trace this fully convolutional network for window ``roi``: twice its total
        stride per axis (2 voxels per axis at the bottleneck), at most ``roi`` (see
        :mod:`medseg.backends.export`): 64^3 instead of 128^3 for nnU-Net's CT network, 1/8 of the work."""
        total = [1] * len(roi)
        for stride in self.encoder.strides:
            total = [t * int(s) for t, s in zip(total, stride)]
        return tuple(min(int(r), 2 * t) for r, t in zip(roi, total))


def architecture_from_plans(configuration: dict) -> tuple[str, dict]:
    """``(class short name, arch kwargs)`` of a resolved plans configuration, old plans format included
    (no ``architecture`` block: rebuilt from ``UNet_base_num_features`` etc. as nnU-Net's plans handler does)."""
    arch = configuration.get("architecture")
    if arch is None:
        name = configuration.get("UNet_class_name")
        if name not in (PLAIN, RESENC):
            raise MedsegError(f"unsupported network {name!r} in old-format plans.json",
                              hint=f"medseg runs {PLAIN} and {RESENC}")
        n = len(configuration["n_conv_per_stage_encoder"])
        dim = len(configuration["patch_size"])
        kwargs = {
            "n_stages": n,
            "features_per_stage": [min(configuration["UNet_base_num_features"] * 2 ** i,
                                       configuration["unet_max_num_features"]) for i in range(n)],
            "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
            "kernel_sizes": configuration["conv_kernel_sizes"], "strides": configuration["pool_op_kernel_sizes"],
            ("n_conv_per_stage" if name == PLAIN else "n_blocks_per_stage"): configuration["n_conv_per_stage_encoder"],
            "n_conv_per_stage_decoder": configuration["n_conv_per_stage_decoder"], "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
        }
        return name, kwargs
    full = str(arch.get("network_class_name", ""))
    short = full.rsplit(".", 1)[-1]
    if short not in (PLAIN, RESENC):
        raise MedsegError(f"unsupported network class {full!r} in plans.json",
                          hint=f"medseg runs {PLAIN} and {RESENC} (ResEnc M/L/XL presets included)")
    return short, dict(arch["arch_kwargs"])


def build_network(configuration: dict, in_channels: int, num_classes: int) -> NnUNetNetwork:
    """The network of a resolved plans configuration, layer names resolved through the fixed table."""
    kind, kwargs = architecture_from_plans(configuration)
    for key, what in (("conv_op", "conv_op"), ("norm_op", "norm_op"), ("dropout_op", "dropout_op"),
                      ("nonlin", "nonlin")):
        kwargs[key] = layer_class(kwargs.get(key), what)
    if kwargs["conv_op"] not in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        raise MedsegError(f"conv_op must be a convolution, got {kwargs['conv_op'].__name__}")
    if kind == RESENC and kwargs.get("block", "BasicBlockD") not in ("BasicBlockD", None) \
            and not str(kwargs.get("block")).endswith("BasicBlockD"):
        raise MedsegError(f"unsupported residual block {kwargs.get('block')!r} in plans.json",
                          hint="medseg runs ResEnc U-Nets with BasicBlockD (the nnU-Net presets)")
    return NnUNetNetwork(kind, in_channels, num_classes, kwargs)
