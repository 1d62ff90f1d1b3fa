"""nnU-Net-style dynamic U-Nets: planning from patch and spacing, re-planning through the card."""
from __future__ import annotations

import torch

from medseg.models import count_parameters, create_model, get_card
from medseg.models._plan import plan_unet


def test_plan_for_isotropic_hippocampus_patch():
    plan = plan_unet((40, 56, 40), (1.0, 1.0, 1.0))
    assert plan.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))  # nnU-Net's Task004 3d_fullres plan
    assert plan.features == (32, 64, 128, 256) and plan.patch_size == (40, 56, 40)


def test_plan_waits_for_the_coarse_axis():
    plan = plan_unet((160, 192, 64), (0.8, 0.8, 3.0))
    assert plan.strides[1] == (2, 2, 1) and plan.kernels[0] == (3, 3, 1)
    assert all(s == (2, 2, 2) for s in plan.strides[2:])
    assert plan.features[-2:] == (320, 320)  # capped like nnU-Net 3D


def test_plan_pads_the_patch_and_caps_stages():
    plan = plan_unet((50, 50), None)
    assert plan.patch_size == (56, 56) and plan.divisor == (8, 8)
    assert plan_unet((128, 128, 128), max_stages=4).num_stages == 4


def test_card_is_replanned_by_overrides():
    model = create_model("nnunet_plain", roi_size=(20, 44, 44), spacing=(3.0, 1.0, 1.0), base_features=4)
    assert model.card.roi_size == (20, 48, 48) and model.card.divisible_by == 8  # strides (1,2,2),(2,2,2),(2,2,2)
    assert model.encoder.stages[1][0].conv.stride == (1, 2, 2)
    model = create_model("nnunet_plain", roi_size=(16, 16, 16), base_features=4).train()
    assert model.card.deep_supervision == 1
    outs = model(torch.randn(1, 1, 16, 16, 16))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 16, 16), (8, 8, 8)]
    assert get_card("nnunet_plain").deep_supervision == 4  # 6 stages for 128^3


def test_residual_encoder_is_deeper():
    assert count_parameters("nnunet_residual") > 3 * count_parameters("nnunet_plain")
    model = create_model("nnunet_residual", roi_size=(32, 32, 32), base_features=4)
    assert [len(s) for s in model.encoder.stages] == [1, 3, 4, 6]  # 32 -> 16 -> 8 -> 4: four stages
