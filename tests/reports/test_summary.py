import math

import numpy as np
import pytest

from medseg.reports.summary import bootstrap_ci, describe, summarize


def test_describe_leaves_out_infinite_values_and_counts_them():
    stats = describe([1.0, 2.0, None, 3.0, math.inf])
    assert stats["n"] == 3 and stats["n_infinite"] == 2
    assert stats["mean"] == 2.0 and stats["median"] == 2.0 and stats["std"] == pytest.approx(1.0)
    assert stats["min"] == 1.0 and stats["max"] == 3.0
    lo, hi = stats["ci95"]
    assert 1.0 <= lo <= 2.0 <= hi <= 3.0


def test_describe_of_nothing_and_of_one_value():
    assert describe([None])["mean"] is None and describe([None])["n_infinite"] == 1
    one = describe([0.5])
    assert one["std"] is None and one["ci95"] == [0.5, 0.5]


def test_bootstrap_ci_is_reproducible_and_covers_the_mean():
    values = np.random.default_rng(1).normal(0.8, 0.1, 40)
    a, b = bootstrap_ci(values), bootstrap_ci(values)
    assert a == b
    assert a[0] < values.mean() < a[1]
    # about 1.96 standard errors each side for a normal sample
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert (a[1] - a[0]) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_summarize_counts_empty_cases_by_kind():
    def row(label, dice, hd, empty_ref, empty_pred):
        keys = ("iou", "precision", "sensitivity", "nsd", "hd95", "assd", "msd_pred_to_ref", "msd_ref_to_pred",
                "volume_ref", "volume_pred", "volume_difference")
        values = {k: hd if k.startswith(("hd", "assd", "msd")) else dice for k in keys}
        return {"label": label, "dice": dice, "hd": hd, "empty_reference": empty_ref,
                "empty_prediction": empty_pred, **values}

    rows = [row(1, 0.9, 2.0, False, False), row(1, 0.0, None, False, True), row(1, 0.0, None, True, False),
            row(1, 1.0, 0.0, True, True)]
    block = summarize(rows, {1: "liver"})["1"]
    assert block["name"] == "liver" and block["n_cases"] == 4
    assert (block["n_only_prediction_empty"], block["n_only_reference_empty"], block["n_both_empty"]) == (1, 1, 1)
    assert block["n_infinite_distance"] == 2
    assert block["metrics"]["dice"]["mean"] == pytest.approx(1.9 / 4)
    assert block["metrics"]["hd"]["mean"] == 1.0 and block["metrics"]["hd"]["n_infinite"] == 2
