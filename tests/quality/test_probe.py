"""The engine's quality probe: same labels as without it, TTA agreement that sees disagreeing passes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.inference.predictor import PredictOptions, Predictor
from tests.inference._models import expected, smooth_volume, threshold_model


def _image(volume):
    return MetaTensor(torch.from_numpy(volume)[None], affine=torch.eye(4, dtype=torch.float64))


class Lopsided(torch.nn.Module):
    """The threshold net plus a ramp along the first axis: mirrored passes disagree near the thresholds."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = threshold_model()
        self.card = self.inner.card

    def forward(self, x):
        ramp = torch.linspace(-4.0, 4.0, x.shape[2]).view(1, 1, -1, 1, 1)
        out = self.inner(x)
        return torch.cat([out[:, :1], out[:, 1:2] + ramp, out[:, 2:]], 1)


def test_quality_signals_leave_the_labels_unchanged_and_agree_for_a_mirror_symmetric_network(rng):
    volume = smooth_volume((20, 18, 16), rng)
    with_q = Predictor(threshold_model(), options=PredictOptions(device="cpu")).predict(_image(volume))
    without = Predictor(threshold_model(), options=PredictOptions(device="cpu", quality=False)).predict(_image(volume))
    assert without.quality is None
    np.testing.assert_array_equal(with_q.labels.numpy()[0], without.labels.numpy()[0])
    np.testing.assert_array_equal(with_q.labels.numpy()[0], expected(volume))
    assert set(with_q.quality) == {"low", "high"}
    for entry in with_q.quality.values():
        assert set(entry) == {"predicted_dice", "flag", "signals"}
        assert entry["predicted_dice"] is None   # the test card has no calibration
        s = entry["signals"]
        assert s["tta_dice"] == pytest.approx(1.0, abs=1e-3)   # a 1x1x1 convolution is mirror-equivariant
        assert s["tta_dice_min"] == pytest.approx(1.0, abs=1e-3) and s["tta_dice_pairs"] == pytest.approx(1.0, abs=1e-3)
        assert 0.0 < s["soft_dice"] < 1.0 and s["boundary_entropy"] >= s["entropy"]   # soft: mass outside counts
        assert 0.5 < s["confidence"] <= 1.0 and 0.0 < s["entropy"] < 1.0
        assert s["volume_ml"] > 0 and s["components"] >= 1


def test_mirrored_passes_that_disagree_lower_the_tta_agreement(rng):
    volume = smooth_volume((20, 18, 16), rng)
    q = Predictor(Lopsided(), options=PredictOptions(device="cpu")).predict(_image(volume)).quality
    s = q["low"]["signals"]
    assert s["tta_dice"] < 0.99
    assert s["tta_dice_min"] <= s["tta_dice_pairs"] < 0.99   # the worst pair is no better than the mean one
    no_tta = Predictor(Lopsided(), options=PredictOptions(device="cpu", tta=False)).predict(_image(volume)).quality
    assert no_tta["low"]["signals"]["tta_dice"] is None and no_tta["low"]["signals"]["tta_dice_min"] is None


def test_axis_gradient_energy_sees_noise_and_thick_slices(rng):
    from medseg.quality.probe import axis_gradient_energy

    def energy(image):
        return axis_gradient_energy(image).mean(dim=(1, 2, 3, 4))

    texture = torch.from_numpy(rng.normal(size=(1, 16, 16, 16)).astype(np.float32))
    smooth = torch.from_numpy(smooth_volume((16, 16, 16), rng))[None]
    assert (energy(smooth + 0.3 * texture) > energy(smooth)).all()                  # noise: up on every axis
    thick = energy(texture.reshape(1, 16, 16, 4, 4).mean(-1).repeat_interleave(4, dim=3))
    assert thick[2] < 0.5 * thick[0]                                                # thick z slices: down along z
