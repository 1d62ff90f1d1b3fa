"""One predictor factory: the API and the CLI share their defaults, cascades keep backend/precision/threshold,
and an ``auto`` CPU runtime is checked against PyTorch per model at run time."""
from __future__ import annotations

import inspect

import pytest
import torch

from medseg import api
from medseg.cli.predict import predict as cli_predict
from medseg.core.errors import MedsegError
from medseg.inference.runtime import GuardedRuntime
from medseg.models import create_model
from medseg.models.heads import head_for
from tests.cascade.test_predict import workdir  # noqa: F401 - fixture


def _defaults(function) -> dict:
    out = {}
    for name, param in inspect.signature(function).parameters.items():
        default = param.default
        out[name] = getattr(default, "default", default)   # typer.Option(...) carries its default
    return out


@pytest.mark.parametrize("option", ["device", "overlap", "tta", "fast", "batch_size", "probabilities", "threads",
                                    "backend", "precision", "threshold", "save_soft"])
def test_the_api_and_the_cli_have_the_same_defaults(option):
    assert _defaults(api.build_predictor)[option] == _defaults(cli_predict)[option]


def test_a_cascade_refuses_a_threshold_instead_of_dropping_it(workdir):  # noqa: F811
    with pytest.raises(MedsegError, match="--threshold applies to sigmoid"):
        api.build_predictor("cascade.thr", device="cpu", threshold=0.7)


def test_a_cascade_runs_each_stage_on_the_requested_cpu_precision(workdir):  # noqa: F811
    predictor = api.build_predictor("cascade.thr", device="cpu", backend="torch", precision="bf16")
    runners = predictor.pipeline.runners
    assert set(runners) == {"stage1", "stage2"} and all(r.precision == "bf16" for r in runners.values())
    assert "bf16" in str(predictor.settings()["cpu_runtime"])


class _Broken:
    """A 'compiled' runtime that lost the model: constant logits."""

    backend, precision = "openvino", "fp32"

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, x):
        out = torch.zeros(x.shape[0], self.channels, *x.shape[2:])
        out[:, 0] = 5.0
        return out


def _bright_half_model():
    torch.manual_seed(0)
    model = create_model("nnunet_plain", roi_size=(16, 16, 16), base_features=4).eval()
    return model


def test_an_auto_runtime_that_disagrees_with_pytorch_is_replaced_on_the_first_windows():
    model = _bright_half_model()
    head = head_for(model.card)
    with torch.no_grad():
        x = torch.randn(2, 1, 16, 16, 16)
        reference = model(x)
    guarded = GuardedRuntime(_Broken(model.card.out_channels), model, head)
    out = guarded(x)
    if not bool((head.decode(reference) > 0).any()):
        pytest.skip("the random network predicts no foreground on this input")
    assert not guarded.trusted and torch.allclose(out, reference.float(), atol=1e-5)
    assert "failed the guard" in guarded.describe()
    assert torch.allclose(guarded(x), reference.float(), atol=1e-5)   # PyTorch from then on


def test_an_auto_runtime_that_agrees_is_kept():
    model = _bright_half_model()

    def same(x):
        with torch.no_grad():
            return model(x).float()

    guarded = GuardedRuntime(same, model, head_for(model.card))
    guarded(torch.randn(1, 1, 16, 16, 16))
    assert guarded.trusted and guarded.min_dice == 1.0
