"""Swin UNETR: MONAI through the zoo, legacy patch merging, official SSL-encoder and full-checkpoint import."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.models import (
    count_parameters,
    create_model,
    get_card,
    load_monai_checkpoint,
    load_swin_ssl_encoder,
)
from medseg.models._swin_import import map_ssl_encoder_keys
from medseg.models.swin_unetr import LegacyPatchMerging
from tests.models.official_checkpoints import (
    official_stunet_state,
    official_swin_ssl_state,
)

needs_einops = pytest.mark.skipif(importlib.util.find_spec("einops") is None, reason="einops not installed")


def test_parameter_counts_match_monai():
    assert count_parameters("swin_unetr_brats") == 62_191_941  # F48, 4 -> 3
    assert count_parameters("swin_unetr") == 62_187_296  # F48, 1 -> 14 (BTCV)
    assert count_parameters("swin_unetr", feature_size=24) == 15_703_304


def test_brats_and_btcv_cards():
    brats = get_card("swin_unetr_brats")
    assert brats.in_channels == 4 and brats.activation == "sigmoid"
    assert brats.labels == ("tumor_core", "whole_tumor", "enhancing_tumor")
    assert brats.intensity.nonzero and brats.roi_size == (128, 128, 128)
    assert [p.tag for p in brats.pretrained] == [f"fold{i}" for i in range(5)]
    assert brats.get_pretrained("fold0").url.endswith("fold0_f48_ep300_4gpu_dice0_8854.zip")
    btcv = get_card("swin_unetr")
    assert btcv.out_channels == 14 and btcv.roi_size == (96, 96, 96) and btcv.spacing == (1.5, 1.5, 2.0)
    assert all(p.arch["legacy_patch_merging"] for p in btcv.pretrained + brats.pretrained)
    assert get_card("swin_unetr_2d").spatial_dims == 2


def test_legacy_patch_merging_reproduces_the_old_voxel_order():
    torch.manual_seed(0)
    legacy = LegacyPatchMerging(dim=1, spatial_dims=3)
    x = torch.arange(4 * 6 * 8, dtype=torch.float32).reshape(1, 4, 6, 8, 1)
    seen = []
    legacy.norm = torch.nn.Identity()
    legacy.reduction = torch.nn.Identity()
    merged = legacy(x)  # (1, 2, 3, 4, 8): the 8 gathered sub-voxels
    for i, j, k in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1)):
        seen.append(x[:, i::2, j::2, k::2, 0])
    assert torch.equal(merged, torch.stack(seen, -1))
    assert torch.equal(merged[..., 2], merged[..., 5])  # the historical duplicate


@needs_einops
def test_legacy_option_changes_the_network_not_its_weights():
    modern = create_model("swin_unetr", feature_size=12, window_size=4).eval()
    legacy = create_model("swin_unetr", feature_size=12, window_size=4, legacy_patch_merging=True).eval()
    legacy.load_state_dict(modern.state_dict())
    x = torch.randn(1, 1, 32, 32, 64)
    with torch.no_grad():
        assert not torch.allclose(modern(x), legacy(x))


def test_ssl_encoder_import_maps_every_official_key(tmp_path):
    model = create_model("swin_unetr", feature_size=12)
    state = official_swin_ssl_state(model)
    assert {"module.patch_embed.proj.weight", "module.layers1.0.blocks.0.mlp.fc1.weight",
            "module.layers4.0.downsample.reduction.weight"} <= set(state)
    torch.save({"epoch": 100, "state_dict": state, "optimizer": {"lr": np.float64(1e-4)}}, tmp_path / "model_swinvit.pt")
    decoder_before = model.decoder1.transp_conv.conv.weight.clone()
    report = load_swin_ssl_encoder(model, tmp_path / "model_swinvit.pt")
    encoder_keys = [k for k in model.state_dict() if k.startswith("swinViT.")]
    assert sorted(report.loaded) == sorted(encoder_keys)  # nothing silently skipped (issue #268)
    assert set(report.unused) == {"module.norm.weight", "module.norm.bias", "module.rotation_head.weight",
                                  "module.contrastive_head.weight"}
    assert torch.equal(model.swinViT.layers2[0].blocks[1].mlp.linear2.weight, state["module.layers2.0.blocks.1.mlp.fc2.weight"])
    assert torch.equal(model.decoder1.transp_conv.conv.weight, decoder_before)


def test_ssl_encoder_wrong_width_and_channel_tiling(tmp_path):
    donor = create_model("swin_unetr", feature_size=24)
    torch.save({"state_dict": official_swin_ssl_state(donor)}, tmp_path / "f24.pt")
    with pytest.raises(MedsegError, match="patch_embed.proj.weight"):
        load_swin_ssl_encoder(create_model("swin_unetr", feature_size=12), tmp_path / "f24.pt")
    four = create_model("swin_unetr_brats", feature_size=24)
    with pytest.raises(MedsegError, match="tile_input_channels"):
        load_swin_ssl_encoder(four, tmp_path / "f24.pt")
    report = load_swin_ssl_encoder(four, tmp_path / "f24.pt", tile_input_channels=True)
    assert report.adapted == ["swinViT.patch_embed.proj.weight"]
    assert four.swinViT.patch_embed.proj.weight.shape[1] == 4


def test_other_ssl_namings_map_too():
    keys = {
        "swinViT.layers1.0.blocks.0.mlp.linear1.weight": "swinViT.layers1.0.blocks.0.mlp.linear1.weight",  # SSLHead
        "module.swin_vit.patch_embed.proj.bias": "swinViT.patch_embed.proj.bias",
        "encoder.layers3.0.0.blocks.1.attn.qkv.weight": "swinViT.layers3.0.blocks.1.attn.qkv.weight",  # DAE
        "encoder.patch_embed.proj.weight": "swinViT.patch_embed.proj.weight",
    }
    mapped, dropped = map_ssl_encoder_keys({k: torch.zeros(1) for k in keys}
                                           | {"encoder.mask_token": torch.zeros(1), "out.conv.conv.weight": torch.zeros(1)})
    assert set(mapped) == set(keys.values())
    assert set(dropped) == {"encoder.mask_token", "out.conv.conv.weight"}


def test_full_checkpoint_import_research_release_layout(tmp_path):
    source = create_model("swin_unetr_brats", feature_size=12)
    state = {"module." + k: v for k, v in source.state_dict().items()}
    torch.save({"epoch": 299, "best_acc": np.float64(0.885), "state_dict": state}, tmp_path / "model.pt")
    target = create_model("swin_unetr_brats", feature_size=12, legacy_patch_merging=True)
    report = load_monai_checkpoint(target, tmp_path / "model.pt")
    assert len(report.loaded) == len(source.state_dict()) == 159
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in source.state_dict().items())


def test_full_checkpoint_errors(tmp_path):
    target = create_model("swin_unetr_brats", feature_size=12)
    torch.save({"state_dict": official_stunet_state(c0=2, blocks=1)}, tmp_path / "stunet.pt")
    with pytest.raises(MedsegError, match="another architecture"):
        load_monai_checkpoint(target, tmp_path / "stunet.pt")
    torch.save({"state_dict": official_swin_ssl_state(target)}, tmp_path / "ssl.pt")
    with pytest.raises(MedsegError, match="self-supervised encoder"):
        load_monai_checkpoint(target, tmp_path / "ssl.pt")
    wrong = create_model("swin_unetr_brats", feature_size=12, out_channels=2).state_dict()
    torch.save(wrong, tmp_path / "two.pt")
    with pytest.raises(MedsegError, match=r"out\.conv\.conv\.weight \(2, 12, 1, 1, 1\)"):
        load_monai_checkpoint(target, tmp_path / "two.pt")
    report = load_monai_checkpoint(target, tmp_path / "two.pt", reinit_heads=True)
    assert report.reinitialised == ["out.conv.conv.weight", "out.conv.conv.bias"]
