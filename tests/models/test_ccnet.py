"""Criss-cross attention sees the row and column of a pixel in one pass and the whole image after two."""
from __future__ import annotations

import torch

from medseg.models import create_model
from medseg.models.ccnet import CrissCrossAttention


def _influence(recurrence: int, p=(2, 3), size=(6, 7)) -> torch.Tensor:
    torch.manual_seed(0)
    cca = CrissCrossAttention(4, reduction=2)
    with torch.no_grad():
        cca.gamma.fill_(1.0)  # the paper starts at 0 (identity); any non-zero value opens the attention
    x = torch.randn(1, 4, *size, requires_grad=True)
    y = x
    for _ in range(recurrence):
        y = cca(y)
    y[0, :, p[0], p[1]].sum().backward()
    return x.grad[0].abs().sum(0) > 0


def test_one_pass_sees_exactly_row_and_column():
    seen = _influence(1)
    expected = torch.zeros_like(seen)
    expected[2, :] = True
    expected[:, 3] = True
    assert torch.equal(seen, expected)


def test_two_passes_see_everything():
    assert _influence(2).all()


def test_ccnet_and_ocr_outputs():
    for name in ("ccnet", "ocrnet"):
        model = create_model(name, base=8, layers=(1, 1, 1, 1), channels=8).train()
        out = model(torch.randn(2, 1, 40, 56))
        logits = out[0] if isinstance(out, tuple) else out
        assert tuple(logits.shape) == (2, 2, 40, 56)
        if name == "ocrnet":
            assert tuple(out[1].shape) == (2, 2, 5, 7)  # soft object regions at output stride 8
