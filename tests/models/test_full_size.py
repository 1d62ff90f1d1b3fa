"""Every registered model at its full card configuration, shapes only (meta device: no memory, no FLOPs)."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from medseg.models import list_models, unpack_train_output
from medseg.models._registry import build_on_meta


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_full_size_forward_shapes(name):
    if name.startswith(("swin", "unetr")) and importlib.util.find_spec("einops") is None:
        pytest.skip("einops not installed")
    from medseg.models import get_card

    if get_card(name).activation == "graph":
        _graph_model_full_size(name)   # graph convolutions index real edges: no meta-device forward
        return
    model = build_on_meta(name)
    card = model.card
    x = torch.empty(1, card.in_channels, *card.roi_size, device="meta")
    out = unpack_train_output(model.train()(x))
    assert tuple(out.logits.shape) == (1, card.out_channels, *card.roi_size)
    assert len(out.deep_supervision) == 1 + card.deep_supervision
    assert tuple(model.eval()(x).shape) == (1, card.out_channels, *card.roi_size)


def _graph_model_full_size(name: str) -> None:
    """Landmark models at the card's input size on the CPU: (1, nodes, 2) positions inside the image."""
    from medseg.models import create_model

    model = create_model(name).eval()
    card = model.card
    with torch.no_grad():
        out = model(torch.zeros(1, card.in_channels, *card.roi_size))
    assert tuple(out.shape) == (1, sum(n for _, n in card.graph), 2)
    assert torch.isfinite(out).all()
