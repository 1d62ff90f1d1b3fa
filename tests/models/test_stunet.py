"""STU-Net: the paper's parameter counts, deep-supervision order and shapes, the TotalSegmentator card."""
from __future__ import annotations

import pytest
import torch

from medseg.models import count_parameters, create_model, get_card
from medseg.models._labels import TOTALSEG_V1_SORTED
from medseg.models._registry import build_on_meta
from medseg.models.stunet import STUNet


@pytest.mark.parametrize(("name", "params"), [
    ("stunet_s", 14_596_941), ("stunet_b", 58_262_669), ("stunet_l", 440_302_605), ("stunet_h", 1_457_326_221),
])
def test_parameter_counts_match_the_paper(name, params):
    # README: 14.6M / 58.26M / 440.30M / 1457.33M for 1 input channel and 105 outputs
    assert count_parameters(name) == params


def test_huge_is_built_on_meta_without_memory():
    model = build_on_meta("stunet_h")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert model.conv_blocks_context[0][0].conv1.weight.shape == (96, 1, 3, 3, 3)
    assert len(model.conv_blocks_context[5]) == 3  # 3 residual blocks per stage


def test_deep_supervision_shapes_and_order_for_a_128_patch():
    model = build_on_meta("stunet_b").train()
    outputs = model(torch.empty(2, 1, 128, 128, 128, device="meta"))
    assert [tuple(o.shape) for o in outputs] == [
        (2, 105, 128, 128, 128), (2, 105, 64, 64, 64), (2, 105, 32, 32, 32), (2, 105, 16, 16, 16), (2, 105, 8, 8, 8)]
    assert tuple(model.eval()(torch.empty(1, 1, 128, 128, 128, device="meta")).shape) == (1, 105, 128, 128, 128)


def test_unit_strides_give_same_resolution_outputs():
    net = STUNet(1, 2, dims=(4, 8, 8), strides=[(2, 2, 2), (1, 1, 1)], deep_supervision=True).train()
    outputs = net(torch.randn(1, 1, 8, 8, 8))
    assert [tuple(o.shape[2:]) for o in outputs] == [(8, 8, 8), (4, 4, 4)]
    assert net.divisor == (2, 2, 2)


def test_deep_supervision_follows_the_card():
    model = create_model("stunet_t", deep_supervision=False).train()
    assert model.card.deep_supervision == 0
    assert isinstance(model(torch.randn(1, 1, 16, 16, 16)), torch.Tensor)
    assert create_model("stunet_t", deep_supervision=True).card.deep_supervision == 2


def test_residual_block_has_biased_convs_affine_norm_and_unnormalised_shortcut():
    model = build_on_meta("stunet_s")
    block = model.conv_blocks_context[1][0]
    assert block.conv1.bias is not None and block.conv1.stride == (2, 2, 2)
    assert block.norm1.affine and block.conv3.kernel_size == (1, 1, 1) and block.conv3.stride == (2, 2, 2)
    assert not any("norm" in name for name, _ in block.conv3.named_modules() if name)
    assert model.upsample_layers[0].scale == (1, 1, 2) and model.upsample_layers[0].conv.kernel_size == (1, 1, 1)


def test_totalsegmentator_card():
    card = get_card("stunet_b")
    assert card.labels[0] == "background" and card.labels[1:] == TOTALSEG_V1_SORTED
    assert len(card.labels) == card.out_channels == 105
    assert card.labels[1] == "adrenal_gland_left" and card.labels[104] == "vertebrae_T9"
    assert list(TOTALSEG_V1_SORTED) == sorted(TOTALSEG_V1_SORTED)  # STU-Net orders v1 names alphabetically
    assert card.spacing == (1.5, 1.5, 1.5) and card.roi_size == (128, 128, 128)
    assert card.intensity.kind == "zscore" and card.intensity.low is None  # nnU-Net 'nonCT', no CT window
    weights = card.get_pretrained("totalseg")
    assert weights.file == "base_ep4k.model" and weights.format == "nnunet"


def test_custom_strides_update_divisibility():
    model = create_model("stunet_s", strides=[(2, 2, 2)] * 5, width=2)
    assert model.card.divisible_by == 32
    model = create_model("stunet_s", strides=[(2, 2, 1)] * 4 + [(1, 1, 1)], width=2)
    assert model.card.divisible_by == 16
