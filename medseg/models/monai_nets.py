"""MONAI baselines through the zoo interface: SegResNet (Myronenko 2018) and UNETR (Hatamizadeh 2022).

Module names are MONAI's, so MONAI bundle checkpoints of the same configuration load by name
(``create_model(name, pretrained="model.pt")`` or :func:`medseg.models.load_monai_checkpoint`).
"""
from __future__ import annotations

from monai.networks.nets import UNETR as _MonaiUNETR
from monai.networks.nets import SegResNet as _MonaiSegResNet

from medseg.core.card import Intensity, ModelCard
from medseg.models._labels import BTCV
from medseg.models._registry import register_model


class SegResNet(_MonaiSegResNet):
    """MONAI SegResNet with the fine-tuning declarations (head / stem tensors)."""

    head_prefixes = ("conv_final.",)
    encoder_prefixes = ("convInit.", "down_layers.")
    stem_keys = ("convInit.conv.weight",)


class UNETR(_MonaiUNETR):
    """MONAI UNETR with the fine-tuning declarations (head / stem tensors)."""

    head_prefixes = ("out.",)
    encoder_prefixes = ("vit.",)
    stem_keys = ("vit.patch_embedding.patch_embeddings.weight", "encoder1.layer.conv1.conv.weight",
                 "encoder1.layer.conv3.conv.weight")


def build_segresnet(card: ModelCard, *, init_filters: int = 32, blocks_down: tuple[int, ...] = (1, 2, 2, 4),
                    blocks_up: tuple[int, ...] = (1, 1, 1), dropout_prob: float | None = None) -> SegResNet:
    """SegResNet (group norm, residual encoder, additive skips); input sides must be multiples of 2^(stages-1)."""
    return SegResNet(spatial_dims=card.spatial_dims, in_channels=card.in_channels, out_channels=card.out_channels,
                     init_filters=init_filters, blocks_down=tuple(blocks_down), blocks_up=tuple(blocks_up),
                     dropout_prob=dropout_prob)


def build_unetr(card: ModelCard, *, feature_size: int = 16, hidden_size: int = 768, mlp_dim: int = 3072,
                num_heads: int = 12, dropout_rate: float = 0.0) -> UNETR:
    """UNETR: a ViT (16^3 patches) encoder on the fixed ``roi_size`` and a CNN decoder."""
    return UNETR(in_channels=card.in_channels, out_channels=card.out_channels, img_size=card.roi_size,
                 feature_size=feature_size, hidden_size=hidden_size, mlp_dim=mlp_dim, num_heads=num_heads,
                 dropout_rate=dropout_rate, spatial_dims=card.spatial_dims)


_SEGRESNET_REF = "Myronenko, 3D MRI brain tumor segmentation using autoencoder regularization, BrainLes 2018"

SEGRESNET_CARD = ModelCard(
    name="segresnet",
    spatial_dims=3,
    in_channels=1,
    out_channels=2,
    labels=("background", "foreground"),
    roi_size=(128, 128, 128),
    spacing=(1.5, 1.5, 1.5),
    intensity=Intensity("zscore"),
    divisible_by=8,
    description="MONAI SegResNet (init_filters 32, blocks 1-2-2-4), e.g. the wholeBody_ct bundle layout",
    reference=_SEGRESNET_REF,
)

SEGRESNET_2D_CARD = ModelCard(
    name="segresnet_2d",
    spatial_dims=2,
    in_channels=1,
    out_channels=2,
    labels=("background", "foreground"),
    roi_size=(256, 256),
    intensity=Intensity("zscore"),
    divisible_by=8,
    slice_axis=2,
    mirror_axes=(0, 1),
    description="MONAI SegResNet in 2D, run slice by slice on volumes along slice_axis",
    reference=_SEGRESNET_REF,
)

UNETR_CARD = ModelCard(
    name="unetr",
    spatial_dims=3,
    in_channels=1,
    out_channels=14,
    labels=("background",) + BTCV,
    channel_names=("CT",),
    roi_size=(96, 96, 96),
    spacing=(1.5, 1.5, 2.0),
    intensity=Intensity("ct", low=-175.0, high=250.0, mean=-175.0, std=425.0),
    divisible_by=16,
    modality="CT",
    description="MONAI UNETR (ViT-B/16 encoder) in the BTCV configuration; the ROI is fixed by the ViT",
    reference="Hatamizadeh et al., UNETR: Transformers for 3D Medical Image Segmentation, WACV 2022",
)

register_model(SEGRESNET_CARD, test_overrides={"roi_size": (16, 16, 16), "init_filters": 8})(build_segresnet)
register_model(SEGRESNET_2D_CARD, test_overrides={"roi_size": (32, 32), "init_filters": 8})(build_segresnet)
register_model(UNETR_CARD, test_overrides={"roi_size": (16, 16, 32), "feature_size": 8, "hidden_size": 48,
                                           "mlp_dim": 96, "num_heads": 4})(build_unetr)
