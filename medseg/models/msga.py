"""Multi-scale self-guided attention network (Sinha & Dolz, IEEE JBHI 2021), 2D original and a 3D variant.

Structure (both variants):

1. A ResNeXt backbone gives features at 1/4, 1/8, 1/16, 1/32. Each scale s is projected to C channels
   (1x1 conv + norm + PReLU) and resized to the 1/4 grid: F'_s. A coarse prediction p_s comes from each.
2. Multi-scale fusion: F_MS = MultiConv(cat[F'_4, F'_3, F'_2, F'_1]).
3. Two guided refinement steps t = 1, 2 per scale: X_{t,s} = cat[F'_s, G_t] with G_1 = F_MS and
   G_2 = A_{1,s} * F_MS. A shared semantic encoder-decoder per step returns a latent e_{t,s} and a
   reconstruction d_{t,s} of X_{t,s}; the attention feature is
   A_{t,s} = conv1((PAM(X) + CAM(X)) * conv3(d_{t,s})). Refined predictions q_s come from A_{2,s}.
4. Eval output: the mean of the 4 refined maps, upsampled to the input size.

Training mode returns a dict (read by type by :func:`medseg.models.unpack_train_output`):

- ``"logits"``: the eval output (for metrics);
- ``"predictions"``: (p_1..p_4, q_1..q_4) at input size; the paper puts a cross-entropy on each;
- ``"aux_loss"``: 0.25 * sum_s MSE(e_{1,s}, e_{2,s}) (semantic guidance between steps) +
  0.1 * sum_{t,s} MSE(X_{t,s}, d_{t,s}) (reconstruction), already weighted, gradients not detached;
- ``"latents"``, ``"guide_inputs"``, ``"reconstructions"``: the raw terms, for custom losses.

The 2D model is the published configuration (ResNeXt-101 32x8d with a 1-channel stem, 64-channel
projections, batch norm, full PAM on the 64x64 grid for 256x256 slices; Xavier init as in the code). The
3D variant keeps every block but uses a lighter ResNeXt, instance norm (small 3D batches) and PAM on a
pooled grid of at most ``pam_max_tokens`` positions.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from medseg.core.card import Intensity, ModelCard
from medseg.models._labels import CHAOS_MR
from medseg.models._msga_blocks import AttentionBranch, MultiConv, SemanticGuide, resize
from medseg.models._registry import register_model
from medseg.models._resnext import ResNeXt, norm_layer

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
SEMANTIC_WEIGHT = 0.25
RECONSTRUCTION_WEIGHT = 0.1


class GuidedAttentionNet(nn.Module):
    """Multi-scale guided attention segmentation network.

    Args:
        dims: 2 or 3.
        in_channels / out_channels: image channels and classes.
        layers, groups, width_per_group, base_planes: the ResNeXt backbone.
        channels: width C of the projected features and attention modules (64 in the paper).
        norm: ``"batch"`` or ``"instance"``.
        pam_max_tokens: attend over at most this many positions (None: all, as in the paper).
    """

    head_prefixes = ("coarse_heads.", "refined_heads.")
    encoder_prefixes = ("backbone.",)
    stem_keys = ("backbone.conv1.weight",)

    def __init__(self, dims: int, in_channels: int, out_channels: int, *, layers: Sequence[int] = (3, 4, 23, 3),
                 groups: int = 32, width_per_group: int = 8, base_planes: int = 64, channels: int = 64,
                 norm: str = "batch", pam_max_tokens: int | None = None) -> None:
        super().__init__()
        conv = _CONV[dims]
        c = channels
        self.backbone = ResNeXt(dims, in_channels, layers, groups, width_per_group, base_planes, norm)
        self.project = nn.ModuleList(
            nn.Sequential(conv(ch, c, 1), norm_layer(dims, norm, c), nn.PReLU()) for ch in self.backbone.channels
        )
        self.fuse = MultiConv(dims, 4 * c, c, norm)
        self.semantic = nn.ModuleList(SemanticGuide(dims, 2 * c, norm) for _ in range(2))
        self.pam = nn.ModuleList(
            nn.ModuleList(AttentionBranch(dims, c, True, norm, pam_max_tokens) for _ in range(4)) for _ in range(2))
        self.cam = nn.ModuleList(
            nn.ModuleList(AttentionBranch(dims, c, False, norm, None) for _ in range(4)) for _ in range(2))
        self.guide_conv = nn.ModuleList(
            nn.ModuleList(conv(2 * c, c, 3, padding=1) for _ in range(4)) for _ in range(2))
        self.attention_out = nn.ModuleList(nn.ModuleList(conv(c, c, 1) for _ in range(4)) for _ in range(2))
        self.coarse_heads = nn.ModuleList(conv(c, out_channels, 1) for _ in range(4))
        self.refined_heads = nn.ModuleList(conv(c, out_channels, 1) for _ in range(4))
        self.apply(_init_xavier)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, object]:
        size = x.shape[2:]
        features = self.backbone(x)
        grid = features[0].shape[2:]
        projected = [resize(proj(f), grid) for proj, f in zip(self.project, features)]  # F'_1..F'_4
        coarse = [head(f) for head, f in zip(self.coarse_heads, projected)]
        fused = self.fuse(torch.cat(projected[::-1], dim=1))
        latents, inputs, recons, guides = [], [], [], [fused] * 4
        attention: list[torch.Tensor] = []
        for step in range(2):
            attention = []
            for s in range(4):
                xs = torch.cat([projected[s], guides[s]], dim=1)
                latent, recon = self.semantic[step](xs)
                att = (_at(self.pam, step, s)(xs) + _at(self.cam, step, s)(xs)) * _at(self.guide_conv, step, s)(recon)
                attention.append(_at(self.attention_out, step, s)(att))
                latents.append(latent)
                inputs.append(xs)
                recons.append(recon)
            guides = [a * fused for a in attention]
        refined = [resize(head(a), size) for head, a in zip(self.refined_heads, attention)]
        logits = torch.stack(refined).mean(0)
        if not self.training:
            return logits
        coarse = [resize(p, size) for p in coarse]
        semantic = sum(F.mse_loss(latents[s], latents[4 + s]) for s in range(4))
        reconstruction = sum(F.mse_loss(r, i) for r, i in zip(recons, inputs))
        return {
            "logits": logits,
            "predictions": tuple(coarse + refined),
            "aux_loss": SEMANTIC_WEIGHT * semantic + RECONSTRUCTION_WEIGHT * reconstruction,
            "latents": tuple(latents),
            "guide_inputs": tuple(inputs),
            "reconstructions": tuple(recons),
        }


def _at(grid: nn.ModuleList, step: int, s: int) -> nn.Module:
    """``grid[step][s]`` of a ModuleList of ModuleLists (torch types the inner item as a plain Module)."""
    return cast(nn.ModuleList, grid[step])[s]


def _init_xavier(module: nn.Module) -> None:
    """The authors' init: Xavier-normal (transposed) convs, batch-norm weight ~ N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.xavier_normal_(module.weight)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_msga(card: ModelCard, *, layers: Sequence[int] | None = None, groups: int | None = None,
               width_per_group: int | None = None, base_planes: int | None = None, channels: int = 64,
               norm: str | None = None, pam_max_tokens: int | None = -1) -> GuidedAttentionNet:
    """Guided attention network; backbone options default to the variant (2D: ResNeXt-101 32x8d)."""
    two = card.spatial_dims == 2
    return GuidedAttentionNet(
        card.spatial_dims, card.in_channels, card.out_channels,
        layers=tuple(layers) if layers else ((3, 4, 23, 3) if two else (2, 2, 2, 2)),
        groups=groups or (32 if two else 16), width_per_group=width_per_group or (8 if two else 4),
        base_planes=base_planes or (64 if two else 32), channels=channels, norm=norm or ("batch" if two else "instance"),
        pam_max_tokens=(None if two else 4096) if pam_max_tokens == -1 else pam_max_tokens,
    )


_REFERENCE = ("Sinha & Dolz, Multi-scale self-guided attention for medical image segmentation, IEEE JBHI 2021; "
              "code: sinAshish/Multi-Scale-Attention")

CARD_2D = ModelCard(
    name="msga_2d",
    spatial_dims=2,
    in_channels=1,
    out_channels=5,
    labels=CHAOS_MR,
    channel_names=("MRI",),
    roi_size=(256, 256),
    intensity=Intensity("minmax"),
    divisible_by=32,
    slice_axis=2,
    mirror_axes=(0, 1),
    modality="MRI",
    description="Multi-scale self-guided attention network (ResNeXt-101 32x8d), CHAOS MR configuration; "
                "2D, run slice by slice on volumes",
    reference=_REFERENCE,
)

CARD_3D = ModelCard(
    name="msga_3d",
    spatial_dims=3,
    in_channels=1,
    out_channels=5,
    labels=CHAOS_MR,
    channel_names=("MRI",),
    roi_size=(96, 96, 96),
    spacing=(1.5, 1.5, 1.5),
    intensity=Intensity("zscore"),
    divisible_by=32,
    modality="MRI",
    description="3D variant of the multi-scale guided attention network (3D ResNeXt, pooled position attention)",
    reference=_REFERENCE,
)

_TINY = {"layers": (1, 1, 1, 1), "groups": 2, "width_per_group": 16, "base_planes": 8, "channels": 8,
         "pam_max_tokens": 512}
register_model(CARD_2D, test_overrides={**_TINY, "roi_size": (64, 64)})(build_msga)
register_model(CARD_3D, test_overrides={**_TINY, "roi_size": (64, 64, 64)})(build_msga)
