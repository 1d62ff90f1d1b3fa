"""Swin UNETR (Hatamizadeh et al. 2022; Tang et al. CVPR 2022) through MONAI, in 2D and 3D.

MONAI's ``SwinUNETR`` module names equal those of the released weights, so this file only adds:

- ``legacy_patch_merging``: the 3D patch-merging order of MONAI < 1.5 (sub-voxels (0,0,0), (1,0,0),
  (0,1,0), (0,0,1), (1,0,1), (0,1,0), (0,0,1), (1,1,1): two duplicates, (1,1,0) and (0,1,1) missing).
  Every released checkpoint (2022) was trained with it, so their numbers only reproduce with it.
- ``head_prefixes`` / ``stem_keys`` for fine-tuning (:func:`medseg.models.adapt_state_dict`).
- three cards: BTCV (1 CT channel, 14 softmax classes), BraTS (4 MR channels, 3 overlapping sigmoid
  regions TC/WT/ET), and a 2D variant run slice by slice.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets.swin_unetr import PatchMergingV2
from monai.networks.nets.swin_unetr import SwinUNETR as _MonaiSwinUNETR

from medseg.core.card import Intensity, ModelCard, Pretrained
from medseg.models._labels import BRATS_CHANNELS, BRATS_REGIONS, BTCV
from medseg.models._registry import register_model

_RELEASE = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
_REFERENCE = ("Hatamizadeh et al., Swin UNETR, BrainLes 2021 (arXiv 2201.01266); Tang et al., CVPR 2022; "
              "code: Project-MONAI/research-contributions SwinUNETR")


class LegacyPatchMerging(PatchMergingV2):
    """MONAI < 1.5 3D patch merging (same parameters as ``PatchMergingV2``, historical voxel order)."""

    _OFFSETS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # 2D was never changed
            return super().forward(x)
        _, d, h, w, _ = x.shape
        if d % 2 or h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2, 0, d % 2))
        x = torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in self._OFFSETS], -1)
        return self.reduction(self.norm(x))


class SwinUNETR(_MonaiSwinUNETR):
    """MONAI's Swin UNETR with the legacy patch-merging option; parameter names are unchanged."""

    head_prefixes = ("out.",)
    encoder_prefixes = ("swinViT.",)   # the self-supervised pretrained transformer
    stem_keys = ("swinViT.patch_embed.proj.weight", "encoder1.layer.conv1.conv.weight",
                 "encoder1.layer.conv3.conv.weight")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        feature_size: int = 48,
        spatial_dims: int = 3,
        legacy_patch_merging: bool = False,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        dropout_path_rate: float = 0.0,
        use_checkpoint: bool = False,
        use_v2: bool = False,
    ) -> None:
        super().__init__(
            in_channels=in_channels, out_channels=out_channels, feature_size=feature_size,
            spatial_dims=spatial_dims, depths=depths, num_heads=num_heads, window_size=window_size, drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate, dropout_path_rate=dropout_path_rate, use_checkpoint=use_checkpoint,
            use_v2=use_v2, downsample=LegacyPatchMerging if legacy_patch_merging else "merging",  # type: ignore[arg-type]
        )
        self.legacy_patch_merging = legacy_patch_merging


def _build(card: ModelCard, *, feature_size: int = 48, legacy_patch_merging: bool = False, window_size: int = 7,
           use_checkpoint: bool = False, use_v2: bool = False, dropout_path_rate: float = 0.0) -> SwinUNETR:
    """Swin UNETR from a card; feature_size must be a multiple of 12, inputs multiples of 32."""
    return SwinUNETR(card.in_channels, card.out_channels, feature_size=feature_size, spatial_dims=card.spatial_dims,
                     legacy_patch_merging=legacy_patch_merging, window_size=window_size,
                     use_checkpoint=use_checkpoint, use_v2=use_v2, dropout_path_rate=dropout_path_rate)


_LEGACY = {"legacy_patch_merging": True, "feature_size": 48}

BTCV_CARD = ModelCard(
    name="swin_unetr",
    spatial_dims=3,
    in_channels=1,
    out_channels=14,
    labels=("background",) + BTCV,
    channel_names=("CT",),
    activation="softmax",
    roi_size=(96, 96, 96),
    spacing=(1.5, 1.5, 2.0),
    intensity=Intensity("ct", low=-175.0, high=250.0, mean=-175.0, std=425.0),  # -> [0, 1]
    divisible_by=32,
    modality="CT",
    description="Swin UNETR (feature size 48) in the BTCV multi-organ configuration",
    reference=_REFERENCE,
    pretrained=(
        Pretrained(
            tag="btcv", file="swin_unetr.base_5000ep_f48_lr2e-4_pretrained.pt", sha256=None,
            license="Apache-2.0 (Project-MONAI/research-contributions)",
            data="BTCV abdomen CT, 24 training cases (dataset_0.json); SSL-initialised encoder",
            metrics={"btcv_val_dice_overlap0.7": 0.8225, "btcv_val_dice_overlap0.5": 0.8186},
            url=_RELEASE + "swin_unetr.base_5000ep_f48_lr2e-4_pretrained.pt", arch=_LEGACY, format="monai_bundle",
        ),
        Pretrained(
            tag="ssl", file="model_swinvit.pt", sha256=None,
            license="Apache-2.0 (Project-MONAI/research-contributions)",
            data="self-supervised on ~5050 CTs (HNSCC, LUNA16, TCIA CT Colonography, TCIA COVID-19, LIDC)",
            url=_RELEASE + "model_swinvit.pt", arch=_LEGACY, format="swin_ssl",
            note="encoder only: decoder and output layer stay random; fine-tune before predicting",
        ),
    ),
)

BRATS_CARD = ModelCard(
    name="swin_unetr_brats",
    spatial_dims=3,
    in_channels=4,
    out_channels=3,
    labels=BRATS_REGIONS,
    channel_names=BRATS_CHANNELS,
    activation="sigmoid",
    roi_size=(128, 128, 128),
    spacing=(1.0, 1.0, 1.0),
    intensity=Intensity("zscore", nonzero=True),  # NormalizeIntensity(nonzero=True, channel_wise=True)
    divisible_by=32,
    modality="MRI",
    postprocess={"threshold": 0.5, "label_values": {"whole_tumor": 2, "tumor_core": 1, "enhancing_tumor": 4}},
    description="Swin UNETR (feature size 48) for BraTS 2021: 3 overlapping sigmoid regions TC, WT, ET",
    reference=_REFERENCE,
    pretrained=tuple(
        Pretrained(
            tag=f"fold{fold}", file=f"swin_unetr_brats21_fold{fold}_model.pt", sha256=None,
            license="Apache-2.0 (Project-MONAI/research-contributions)",
            data=f"BraTS 2021 training set, fold {fold} of brats21_folds.json held out",
            metrics={"brats21_fold_mean_dice": dice},
            url=f"{_RELEASE}fold{fold}_f48_ep300_4gpu_dice0_{round(dice * 10000)}.zip", arch=_LEGACY,
            format="monai_bundle", note="unzip the release and import its model.pt",
        )
        for fold, dice in enumerate((0.8854, 0.9059, 0.8981, 0.8924, 0.9035))
    ),
)

CARD_2D = ModelCard(
    name="swin_unetr_2d",
    spatial_dims=2,
    in_channels=1,
    out_channels=2,
    labels=("background", "foreground"),
    roi_size=(256, 256),
    intensity=Intensity("zscore"),
    divisible_by=32,
    slice_axis=2,
    mirror_axes=(0, 1),
    description="2D Swin UNETR (feature size 48), run slice by slice on volumes along slice_axis",
    reference=_REFERENCE,
)

# small enough for a CPU test: 4^3 windows, and 32x32x64 keeps 2 voxels at the 1/32 bottleneck (instance norm)
_SMALL_3D = {"feature_size": 12, "window_size": 4, "roi_size": (32, 32, 64)}
register_model(BTCV_CARD, test_overrides=_SMALL_3D)(_build)
register_model(BRATS_CARD, test_overrides=_SMALL_3D)(_build)
register_model(CARD_2D, test_overrides={"feature_size": 12, "window_size": 4, "roi_size": (64, 64)})(_build)
