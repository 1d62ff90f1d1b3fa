"""The run-time accuracy guard on folder networks: it checks the first window only, returns the PyTorch
result it computed for a refused batch (no window runs twice more), and still refuses a runtime whose
network is genuinely wrong (weights perturbed), while the same network with its own weights is kept."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medseg.inference.runtime import GuardedRuntime
from medseg.models.heads import head_for
from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._fixtures import FIXTURES, fixture_names, inputs

CASE = "hippocampus_033"
pytestmark = pytest.mark.skipif("hippo_3d" not in fixture_names(), reason="nnU-Net fixtures not built")


class Counting:
    """A window network that counts its calls (windows run)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net, self.windows = net, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        with torch.no_grad():
            return self.net(x).float()


def _perturbed(net: torch.nn.Module, scale: float) -> torch.nn.Module:
    wrong = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in wrong.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * p.abs().mean())
    return wrong


def _guarded(model: NnUNetModel, runtime_net: torch.nn.Module) -> tuple[GuardedRuntime, Counting, Counting]:
    compiled, reference = Counting(runtime_net), Counting(model.networks[0])
    guarded = GuardedRuntime(compiled, model.networks[0], head_for(model.runtime_card()))
    guarded._torch = reference     # count the PyTorch windows the guard runs
    model.runners = [guarded]
    model.stitching = "nnunet"
    return guarded, compiled, reference


def test_a_wrong_runtime_is_refused_on_its_first_window_and_costs_no_window_twice():
    model = NnUNetModel.load(FIXTURES / "hippo_3d" / "model", folds=["0"])
    expected = sitk.GetArrayFromImage(model.predict(inputs("hippo_3d", CASE), tta=False, batch_size=1))
    windows = model.last_tta["windows"]["run"]
    assert windows >= 2
    guarded, compiled, reference = _guarded(model, _perturbed(model.networks[0], 0.5))
    got = sitk.GetArrayFromImage(model.predict(inputs("hippo_3d", CASE), tta=False, batch_size=1))
    assert not guarded.trusted and guarded.min_dice < 0.999
    assert compiled.windows == 1                     # the compiled network ran the first window only
    assert reference.windows == windows              # every window once in PyTorch, the first one reused
    np.testing.assert_array_equal(got, expected)     # and the labels are PyTorch's


def test_a_runtime_that_agrees_is_checked_on_the_first_window_only():
    model = NnUNetModel.load(FIXTURES / "hippo_3d" / "model", folds=["0"])
    guarded, compiled, reference = _guarded(model, model.networks[0])
    model.predict(inputs("hippo_3d", CASE), tta=False, batch_size=1)
    windows = model.last_tta["windows"]["run"]
    assert guarded.trusted and guarded.min_dice == 1.0
    assert reference.windows == 1 and compiled.windows == windows
