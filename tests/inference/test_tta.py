"""Mirroring TTA: the passes of a small window run as one network call and give the same mean as one call per
flip (which large windows keep, so their memory stays that of a single pass)."""
from __future__ import annotations

import torch

from medseg.inference import tta


class _Counting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(1, 3, 3, padding=1)   # not flip-invariant: every pass differs
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.conv(x)


def _reference(net, x, axes):
    outs = [torch.flip(net(torch.flip(x, [2 + a for a in s])), [2 + a for a in s]) if s else net(x)
            for s in tta.flip_sets(axes)]
    return torch.stack(outs).mean(0)


def test_small_windows_run_every_pass_in_one_call():
    net, x = _Counting().eval(), torch.randn(1, 1, 6, 7, 5)
    with torch.no_grad():
        before = x.clone()
        out = tta.mirrored(net, x, (0, 1, 2))
        assert net.calls == [8] and torch.equal(x, before)   # one call; the input is untouched
        net.calls.clear()
        expected = _reference(net, x, (0, 1, 2))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_one_call_for_small_and_one_per_flip_for_large(monkeypatch):
    net, x = _Counting().eval(), torch.randn(2, 1, 6, 7, 5)
    with torch.no_grad():
        batched = tta.mirrored(net, x, (0, 2))
        assert net.calls == [8]                       # 2 windows x 4 passes in one call
        net.calls.clear()
        monkeypatch.setattr(tta, "BATCH_PASSES_ELEMENTS", x.numel())  # too large to batch the passes
        looped = tta.mirrored(net, x, (0, 2))
        assert net.calls == [2, 2, 2, 2]
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)
