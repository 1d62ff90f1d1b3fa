"""The accuracy guard's verdict is remembered with the compiled model: a later run that trusts a passed
runtime pays no PyTorch window (checked again every RECHECK_EVERY-th run), and a refused one is not used."""
from __future__ import annotations

import json

import pytest
import torch

from medseg.backends import verdict
from medseg.backends.availability import is_available
from medseg.inference import runtime as rt
from medseg.inference.runtime import GuardedRuntime
from medseg.models import create_model
from medseg.models.heads import head_for


class _Counting(torch.nn.Module):
    """The model, counting how often PyTorch runs it (the guard's reference pass)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


class _Compiled:
    """A stand-in compiled runtime kept in a cache entry: the model's own logits, or constant ones (broken)."""

    backend, precision, reason = "openvino", "fp32", "auto: test"

    def __init__(self, model, entry, broken: bool = False) -> None:
        self.model, self.cache_path, self.broken, self.calls = model, entry, broken, 0

    def __call__(self, x):
        self.calls += 1
        with torch.no_grad():
            out = self.model(x).float()
        if self.broken:
            out = torch.zeros_like(out)
            out[:, 0] = 5.0
        return out


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = create_model("nnunet_plain", roi_size=(16, 16, 16), base_features=4).eval()
    x = torch.randn(1, 1, 16, 16, 16) * 3
    with torch.no_grad():
        if not bool((head_for(net.card).decode(net(x)) > 0).any()):
            pytest.skip("the random network predicts no foreground on this input")
    return net, x


def _run(net, x, entry, broken=False):
    counting = _Counting(net)
    compiled = _Compiled(net, entry, broken)
    guarded = GuardedRuntime(compiled, counting, head_for(net.card))
    out = guarded(x)
    return guarded, counting.calls, compiled.calls, out


def test_a_passed_guard_is_trusted_on_later_runs_without_a_pytorch_window(model, tmp_path):
    net, x = model
    first, torch_calls, _, _ = _run(net, x, tmp_path)
    assert first.trusted and torch_calls == 1                        # the first run checks
    assert verdict.read(tmp_path).passed
    second, torch_calls, compiled_calls, _ = _run(net, x, tmp_path)
    assert second.trusted and torch_calls == 0 and compiled_calls == 1  # later runs do not
    assert "earlier run" in second.describe()


def test_a_remembered_pass_is_checked_again_every_recheck_every_runs(model, tmp_path):
    net, x = model
    _run(net, x, tmp_path)
    checks = [_run(net, x, tmp_path)[1] for _ in range(verdict.RECHECK_EVERY)]
    assert checks == [0] * (verdict.RECHECK_EVERY - 1) + [1]


def test_a_recheck_that_fails_revokes_the_pass(model, tmp_path):
    net, x = model
    _run(net, x, tmp_path)
    stored = json.loads((tmp_path / verdict.VERDICT_FILE).read_text())
    stored["runs_since"] = verdict.RECHECK_EVERY - 1                   # the next run is due a check
    (tmp_path / verdict.VERDICT_FILE).write_text(json.dumps(stored))
    guarded, torch_calls, _, out = _run(net, x, tmp_path, broken=True)
    assert not guarded.trusted and torch_calls == 1 and not verdict.read(tmp_path).passed
    with torch.no_grad():
        assert torch.allclose(out, net(x).float(), atol=1e-5)      # PyTorch's labels, not the broken ones


def test_a_remembered_refusal_never_runs_the_compiled_runtime(model, tmp_path):
    net, x = model
    refused, _, _, _ = _run(net, x, tmp_path, broken=True)
    assert not refused.trusted and not verdict.read(tmp_path).passed
    again, torch_calls, compiled_calls, out = _run(net, x, tmp_path, broken=True)
    assert not again.trusted and compiled_calls == 0 and torch_calls == 1
    assert "refused on an earlier run" in again.describe()


def test_windows_without_foreground_record_nothing(tmp_path):
    torch.manual_seed(0)
    net = create_model("nnunet_plain", roi_size=(16, 16, 16), base_features=4).eval()

    def background(x):
        out = torch.zeros(x.shape[0], net.card.out_channels, *x.shape[2:])
        out[:, 0] = 5.0
        return out

    background.cache_path = tmp_path
    guarded = GuardedRuntime(background, background, head_for(net.card))   # both agree: all background
    guarded(torch.randn(2, 1, 16, 16, 16))
    assert guarded.trusted and verdict.read(tmp_path) is None


def test_a_verdict_under_another_threshold_or_unreadable_is_ignored(tmp_path):
    (tmp_path / verdict.VERDICT_FILE).write_text(json.dumps(
        {"passed": True, "min_dice": 0.99, "checked_at": "x", "threshold": 0.9}))
    assert verdict.read(tmp_path) is None
    (tmp_path / verdict.VERDICT_FILE).write_text("{not json")
    assert verdict.read(tmp_path) is None


@pytest.mark.skipif(not is_available("openvino"), reason="openvino (medseg[cpu]) not installed")
def test_cpu_runtime_skips_loading_a_runtime_whose_refusal_is_remembered(model, monkeypatch, tmp_path):
    net, _ = model
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path))
    from medseg.backends.predictor import compiled_entry

    entry = compiled_entry(net, roi_size=net.card.roi_size, in_channels=net.card.in_channels)
    entry.mkdir(parents=True)
    verdict.record(entry, passed=False, min_dice=0.9)

    def no_compile(*args, **kwargs):
        raise AssertionError("the refused runtime was loaded")

    monkeypatch.setattr("medseg.backends.get_predictor", no_compile)
    guarded = rt.cpu_runtime(net, net.card, backend="auto", precision="auto")
    assert isinstance(guarded, GuardedRuntime) and not guarded.trusted and guarded.backend == "torch"
    assert verdict.read(entry) is not None and verdict.read(entry).passed is False


def test_the_sidecar_says_the_guard_was_remembered(model, tmp_path):
    from types import SimpleNamespace

    from medseg.inference.provenance import run_record

    net, x = model
    _run(net, x, tmp_path)
    second, _, _, _ = _run(net, x, tmp_path)
    run = run_record(SimpleNamespace(device=torch.device("cpu"), cpu_network=second),
                     {"device": "cpu (2 threads)", "tta": False})
    assert run["backend"] == "openvino" and "guard passed on an earlier run" in run["backend_reason"]
