"""From signals to the sidecar block: calibrated Dice, flags, out-of-domain caps, training reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.core.card import ModelCard
from medseg.quality.calibration import feature_vector, fit
from medseg.quality.estimate import OOD_CAP, assess, flagged_structures
from medseg.quality.signals import reference_statistics, shape_signals

NAMES = ("background", "a", "b")


def _labels():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[4:10, 4:10, 4:10] = 1
    labels[12:16, 12:16, 12:16] = 2
    labels[0:2, 0:2, 0:2] = 2         # a second component of b, on the border
    return labels


def _card(**quality) -> ModelCard:
    return ModelCard(name="q", spatial_dims=3, in_channels=1, out_channels=3, labels=NAMES, quality=quality)


def _calibration(rng):
    """A calibration on each structure's own TTA agreement (a stored calibration names its features)."""
    agreement = rng.uniform(0.3, 1.0, 100)
    features = ("log1m_tta_dice",)
    return fit([feature_vector({"tta_dice": a}, features) for a in agreement], agreement, features=features).to_dict()


def test_shape_signals_count_volume_components_and_border_contact():
    s = shape_signals(_labels(), (2.0, 1.0, 1.0), 3)
    assert s[1] == {"volume_ml": 0.432, "share": 0.75, "components": 1, "touches_border": False}
    assert s[2]["components"] == 2 and s[2]["touches_border"]


def test_reference_statistics_from_training_cases_and_z_scores():
    cases = [{"label": torch.from_numpy(_labels())[None], "image": torch.ones((1, 20, 20, 20))}] * 3
    ref = reference_statistics(cases, (1.0, 1.0, 1.0), NAMES)
    assert set(ref) == {"a", "b"} and ref["a"]["present_fraction"] == 1.0 and ref["b"]["components"]["p95"] == 2
    q = assess(_labels(), (1.0, 1.0, 1.0), _card(reference=ref), NAMES, probe={1: {"intensity_mean": 1.0}})
    assert q["a"]["signals"]["volume_z"] == 0.0 and q["a"]["signals"]["intensity_z"] == 0.0


def test_calibrated_estimates_follow_agreement_and_flag_below_the_threshold(rng):
    card = _card(calibration=_calibration(rng))
    q = assess(_labels(), (1.0,) * 3, card, NAMES, probe={1: {"tta_dice": 0.97}, 2: {"tta_dice": 0.4}})
    assert q["a"]["predicted_dice"] > 0.85 and not q["a"]["flag"]
    assert q["b"]["predicted_dice"] < 0.6 and q["b"]["flag"]
    assert flagged_structures(q) == ["b"]
    lenient = assess(_labels(), (1.0,) * 3, card, NAMES, probe={2: {"tta_dice": 0.4}}, flag_below=0.3)
    assert not lenient["b"]["flag"]


def test_out_of_domain_scans_are_flagged_everywhere_whatever_the_network_says(rng):
    card = _card(calibration=_calibration(rng))
    q = assess(_labels(), (1.0,) * 3, card, NAMES, probe={1: {"tta_dice": 1.0}, 2: {"tta_dice": 1.0}},
               domain=["modality"])
    assert all(e["flag"] and e["predicted_dice"] <= OOD_CAP for e in q.values())
    assert q["a"]["signals"]["out_of_domain"] == ["modality"]
    uncalibrated = assess(_labels(), (1.0,) * 3, _card(), NAMES, domain=["field_of_view"])
    assert all(e["flag"] and e["predicted_dice"] is None for e in uncalibrated.values())


def test_an_expected_structure_that_is_missing_predicts_zero(rng):
    cases = [{"label": torch.from_numpy(_labels())[None], "image": torch.ones((1, 20, 20, 20))}]
    card = _card(reference=reference_statistics(cases, (1.0,) * 3, NAMES), calibration=_calibration(rng))
    labels = _labels()
    labels[labels == 1] = 0
    q = assess(labels, (1.0,) * 3, card, NAMES)
    assert q["a"]["predicted_dice"] == 0.0 and q["a"]["flag"]


def test_scan_level_signals_and_one_sided_features():
    from medseg.quality.estimate import derive

    out = derive({"a": {"tta_dice": 0.9, "soft_dice": 0.8}, "b": {"tta_dice": 0.7, "soft_dice": None}}, {})
    assert out["a"]["scan_tta_dice"] == out["b"]["scan_tta_dice"] == pytest.approx(0.8)
    assert out["b"]["scan_soft_dice"] == pytest.approx(0.8)          # the structures that have it
    features = ("neg_gradient_z", "abs_gradient_z", "log1m_tta_dice")
    assert feature_vector({"gradient_z": -2.0, "tta_dice": 0.9}, features) == pytest.approx([2.0, 2.0, np.log(0.1)])
    assert feature_vector({"gradient_z": 3.0}, features)[:2] == [0.0, 3.0]
