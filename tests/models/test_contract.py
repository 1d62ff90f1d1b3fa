"""One contract over every registered model: build from the card, forward, outputs as declared, weights round trip."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from medseg.core.card import Pretrained
from medseg.models import (
    count_parameters,
    create_model,
    get_entry,
    list_models,
    unpack_train_output,
    weights,
)
from medseg.models._registry import resolve

EINOPS = importlib.util.find_spec("einops") is not None
NEEDS_EINOPS = {"swin_unetr", "swin_unetr_2d", "swin_unetr_brats", "unetr"}


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_zoo_has_the_promised_models():
    names = set(list_models())
    assert {"stunet_s", "stunet_b", "stunet_l", "stunet_h", "swin_unetr", "swin_unetr_brats", "swin_unetr_2d",
            "msga_2d", "msga_3d", "nnunet_plain", "nnunet_residual", "segresnet", "unetr"} <= names


def test_zoo_has_the_2d_models_of_issue_11():
    """The parametrised contract below only covers what is registered: pin the 2D seed architectures."""
    two_d = {"deeplabv3plus_mobilenetv2", "deeplabv3plus_resnet", "ccnet", "ocrnet", "basnet", "msga_2d",
             "nnunet_plain_2d", "nnunet_residual_2d"}
    assert two_d <= set(list_models())
    assert all(create_model(n, **dict(get_entry(n).test_overrides)).card.spatial_dims == 2 for n in two_d)
    assert create_model("basnet", **dict(get_entry("basnet").test_overrides)).card.activation == "sigmoid"


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name, tmp_path):
    if name in NEEDS_EINOPS and not EINOPS:
        pytest.skip("einops (MONAI optional dependency) is not installed")
    torch.manual_seed(0)
    entry = get_entry(name)
    overrides = dict(entry.test_overrides)
    model = create_model(name, **overrides)
    card = model.card
    assert card.name == name
    assert len(card.roi_size) == card.spatial_dims
    assert all(s % card.divisible_by == 0 for s in card.roi_size), "the card's ROI must satisfy its own divisibility"
    if card.activation in ("softmax", "sigmoid"):
        assert len(card.labels) == card.out_channels
    if card.activation == "softmax":
        assert card.labels[0] == "background"
    if card.spatial_dims == 2:
        assert card.slice_axis in (0, 1, 2) and all(a in (0, 1) for a in card.mirror_axes)
    assert count_parameters(name, **overrides) == sum(p.numel() for p in model.parameters())

    x = torch.randn(1, card.in_channels, *card.roi_size)
    if card.activation == "graph":  # landmark models: node positions (N, nodes, 2), not dense logits
        _check_graph_outputs(model, x, sum(n for _, n in card.graph))
    else:
        x = torch.randn(1, card.in_channels, *card.roi_size)
        full = (1, card.out_channels, *card.roi_size)
        model.train()
        raw = model(x)
        out = unpack_train_output(raw)
        assert len(out.deep_supervision) == 1 + card.deep_supervision
        assert tuple(out.logits.shape) == full
        for low in out.deep_supervision[1:]:
            assert low.shape[:2] == full[:2] and all(a <= b for a, b in zip(low.shape[2:], full[2:]))
        if card.train_output == "dict":
            assert isinstance(raw, dict) and out.predictions and out.aux_loss is not None
            assert all(tuple(p.shape) == full for p in out.predictions)
            assert out.aux_loss.ndim == 0 and torch.isfinite(out.aux_loss)
        else:
            assert not isinstance(raw, dict)

        model.eval()
        with torch.no_grad():
            logits = model(x)
        assert isinstance(logits, torch.Tensor) and tuple(logits.shape) == full
        assert torch.isfinite(logits).all()
        if card.activation == "softmax":  # raw logits, not already probabilities
            assert not torch.allclose(logits.sum(1), torch.ones(()), atol=1e-3)
        elif card.activation == "sigmoid":
            assert logits.min() < 0 or logits.max() > 1

    path = tmp_path / f"{name}.safetensors"
    digest = weights.save_weights(model, path)
    card2, arch = resolve(name, **overrides)
    card2 = card2.replace(pretrained=(Pretrained(tag="local", file=path.name, sha256=digest),))
    clone = entry.builder(card2, **arch)
    weights.load_pretrained(clone, card2, "local", weights_dir=tmp_path)
    mine, theirs = model.state_dict(), clone.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def _check_graph_outputs(model, x, nodes: int) -> None:
    model.train()
    raw = model(x)
    assert tuple(raw[0].shape) == (1, nodes, 2)
    model.eval()
    with torch.no_grad():
        positions = model(x)
    assert isinstance(positions, torch.Tensor) and tuple(positions.shape) == (1, nodes, 2)
    assert torch.isfinite(positions).all()
