"""The signals -> predicted Dice mapping: monotone, ordered like the truth it was fitted on, JSON round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.quality.calibration import FEATURES, Calibration, feature_vector, fit, isotonic_knots, spearman


def _data(rng, n=200):
    agreement = rng.uniform(0.5, 1.0, n)
    dice = np.clip(agreement - 0.1 + rng.normal(0, 0.05, n), 0, 1)
    rows = [feature_vector({"scan_tta_dice": a, "confidence": 0.9, "volume_z": rng.normal(),
                            "components": 1, "touches_border": False}) for a in agreement]
    return rows, dice, agreement


def test_fitted_calibration_is_monotone_and_tracks_the_dice_it_was_fitted_on(rng):
    rows, dice, agreement = _data(rng)
    cal = fit(rows, dice)
    assert np.all(np.diff(cal.knots_dice) >= 0) and np.all(np.diff(cal.knots_score) > 0)
    predicted = cal.predict(rows)
    assert predicted.min() >= 0 and predicted.max() <= 1
    assert spearman(predicted, dice) > 0.8
    more = cal.predict([feature_vector({"scan_tta_dice": a}) for a in (0.55, 0.75, 0.95)])
    assert more[0] <= more[1] <= more[2] and more[0] < more[2]


def test_calibration_survives_the_card_json_and_rejects_other_features(rng):
    rows, dice, _ = _data(rng, 60)
    cal = fit(rows, dice)
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_allclose(again.predict(rows), cal.predict(rows), atol=1e-4)
    with pytest.raises(ValueError):
        Calibration.from_dict({**cal.to_dict(), "features": ["tta_dice"]})


def test_missing_signals_count_as_the_training_mean(rng):
    rows, dice, _ = _data(rng, 60)
    cal = fit(rows, dice)
    assert np.isfinite(cal.predict([[None] * len(FEATURES)])).all()


def test_isotonic_knots_pool_violators_and_spearman_matches_scipy(rng):
    kx, ky = isotonic_knots(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.1, 0.5, 0.3, 0.9]))
    assert ky == pytest.approx((0.1, 0.4, 0.9)) and kx == pytest.approx((0.0, 1.5, 3.0))
    from scipy.stats import spearmanr

    a, b = rng.normal(size=50), rng.normal(size=50)
    b[:5] = b[0]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_a_structure_that_is_harder_gets_a_lower_offset(rng):
    agreement = rng.uniform(0.6, 1.0, 200)
    names = np.array(["easy", "hard"] * 100)
    dice = agreement - np.where(names == "hard", 0.15, 0.0)
    cal = fit([feature_vector({"scan_tta_dice": a}) for a in agreement], dice, structures=list(names))
    easy, hard = cal.predict([feature_vector({"scan_tta_dice": 0.9})] * 2, ["easy", "hard"])
    assert hard < easy - 0.05
    assert cal.offsets["hard"] < cal.offsets["easy"]
