"""Official STU-Net checkpoints (nnU-Net v1 .model / v2 .pth) load by name, safely, with clear errors."""
from __future__ import annotations

import collections
import fractions
import pickle

import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.models import adapt_state_dict, create_model, load_official_stunet
from medseg.models._checkpoint import load_checkpoint
from tests.models.official_checkpoints import (
    official_stunet_state,
    save_nnunet_v1,
    save_nnunet_v2,
)


def _equal(model, state):
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())


def test_v1_model_file_with_numpy1_extras_and_module_prefix(tmp_path):
    state = official_stunet_state(c0=16, blocks=1)  # true STU-Net-S shapes
    path = save_nnunet_v1(state, tmp_path / "small_ep4k.model", prefix="module.")
    model = create_model("stunet_s")
    report = load_official_stunet(model, path)
    assert len(report.loaded) == len(state) == len(model.state_dict())
    assert not report.unused and not report.reinitialised
    assert _equal(model, state)


def test_v2_pth_file(tmp_path):
    state = official_stunet_state(c0=4, blocks=3, num_classes=7)
    path = save_nnunet_v2(state, tmp_path / "checkpoint_final.pth")
    model = create_model("stunet_h", width=4, out_channels=7)
    report = load_official_stunet(model, path)
    assert len(report.loaded) == len(state)
    assert _equal(model, state)


def test_files_are_loaded_weights_only_with_an_allowlist(tmp_path):
    state = official_stunet_state(c0=2, blocks=1)
    path = save_nnunet_v1(state, tmp_path / "x.model")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # plain weights-only loading refuses the numpy extras
    assert "plot_stuff" in load_checkpoint(path)  # our allowlist reads them, without unpickling code
    torch.save({"state_dict": state, "extra": fractions.Fraction(1, 3)}, tmp_path / "evil.model")
    with pytest.raises(MedsegError, match="fractions.Fraction"):
        load_official_stunet(create_model("stunet_s", width=2), tmp_path / "evil.model")


def test_wrong_shape_tensor_is_named(tmp_path):
    state = official_stunet_state(c0=2, blocks=1)
    state["conv_blocks_localization.2.0.conv2.weight"] = torch.zeros(8, 8, 1, 3, 3)
    path = save_nnunet_v1(state, tmp_path / "bad.model")
    model = create_model("stunet_s", width=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(MedsegError, match=r"conv_blocks_localization\.2\.0\.conv2\.weight \(8, 8, 1, 3, 3\)"):
        load_official_stunet(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_checkpoint_of_another_size_says_which(tmp_path):
    path = save_nnunet_v1(official_stunet_state(c0=4, blocks=2), tmp_path / "other.model")
    with pytest.raises(MedsegError, match="c0 4 in file vs 2 in model") as info:
        load_official_stunet(create_model("stunet_s", width=2), path)
    assert "blocks_per_stage 2 in file vs 1" in str(info.value)


def test_checkpoint_of_another_architecture(tmp_path):
    plain_nnunet = collections.OrderedDict({
        "conv_blocks_context.0.blocks.0.conv.weight": torch.zeros(32, 1, 3, 3, 3),
        "conv_blocks_context.0.blocks.0.instnorm.weight": torch.ones(32),
        "tu.0.weight": torch.zeros(320, 320, 1, 1, 2),
    })
    path = save_nnunet_v1(plain_nnunet, tmp_path / "generic_unet.model")
    with pytest.raises(MedsegError, match="another architecture"):
        load_official_stunet(create_model("stunet_s", width=2), path)
    (tmp_path / "page.model").write_text("<!DOCTYPE html><html>Google Drive - virus scan warning</html>")
    with pytest.raises(MedsegError, match="HTML page"):
        load_official_stunet(create_model("stunet_s", width=2), tmp_path / "page.model")


def test_finetune_new_classes_and_more_input_channels(tmp_path):
    state = official_stunet_state(c0=2, blocks=1, num_classes=105, in_channels=1)
    path = save_nnunet_v1(state, tmp_path / "pre.model")
    model = create_model("stunet_s", width=2, out_channels=4, in_channels=2)
    fresh_head = model.seg_outputs[4].weight.clone()
    report = load_official_stunet(model, path, reinit_heads=True, tile_input_channels=True)
    assert sorted(report.adapted) == ["conv_blocks_context.0.0.conv1.weight", "conv_blocks_context.0.0.conv3.weight"]
    assert len(report.reinitialised) == 10 and all(k.startswith("seg_outputs.") for k in report.reinitialised)
    assert len(report.unused) == 10  # the file's 105-class heads
    stem = model.conv_blocks_context[0][0].conv1.weight
    file_stem = state["conv_blocks_context.0.0.conv1.weight"]
    assert torch.equal(stem[:, 0], file_stem[:, 0]) and torch.equal(stem[:, 1], file_stem[:, 0])  # tiled, not divided
    assert torch.equal(model.seg_outputs[4].weight, fresh_head)
    assert torch.equal(model.upsample_layers[0].conv.weight, state["upsample_layers.0.conv.weight"])


def test_adapt_state_dict_reports_and_refuses_silent_mismatch():
    source = create_model("stunet_s", width=2)
    target = create_model("stunet_s", width=2, out_channels=3)
    with pytest.raises(MedsegError, match="seg_outputs"):
        adapt_state_dict(source.state_dict(), target)
    report = adapt_state_dict(source.state_dict(), target, reinit_heads=True)
    assert len(report.loaded) == len(target.state_dict()) - 10
    assert "re-initialised" in report.summary()
