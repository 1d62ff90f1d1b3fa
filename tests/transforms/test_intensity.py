"""The four intensity schemes (zscore, ct, percentile, minmax) and non-finite handling."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.transforms import (
    CTNormalized,
    MinMaxScaled,
    PercentileScaled,
    ZScoreNormalized,
    _util,
    ensure_float,
    percentile_scale,
    zscore,
)


def _mt(data):
    return MetaTensor(torch.as_tensor(data, dtype=torch.float32), affine=torch.eye(4))


def test_zscore_per_channel_with_percentile_clip():
    data = torch.stack([torch.linspace(0, 100, 1000), torch.linspace(-5, 5, 1000)]).reshape(2, 10, 10, 10)
    data[0, 0, 0, 0] = 1e6  # an outlier that the clip removes
    out = ZScoreNormalized("image", low=0.5, high=99.5)({"image": _mt(data)})["image"]
    for c in range(2):
        assert abs(float(out[c].mean())) < 1e-4 and float(out[c].std()) == pytest.approx(1.0, abs=2e-3)
    assert float(out[0].max()) < 2.0  # the outlier was clipped before the statistics


def test_ct_window_then_fixed_statistics():
    data = _mt(torch.tensor([-2000.0, -100.0, 50.0, 3000.0]).reshape(1, 4, 1, 1))
    out = CTNormalized("image", low=-100, high=200, mean=50.0, std=25.0)({"image": data})["image"]
    assert out.flatten().tolist() == pytest.approx([-6.0, -6.0, 0.0, 6.0])
    window = CTNormalized("image", low=-100, high=200)({"image": data})["image"]
    assert window.flatten().tolist() == pytest.approx([-1.0, -1.0, 0.0, 1.0])


def test_percentile_and_minmax_map_to_unit_range():
    data = _mt(torch.arange(1000.0).reshape(1, 10, 10, 10))
    pct = PercentileScaled("image", 1, 99)({"image": data})["image"]
    mm = MinMaxScaled("image")({"image": data})["image"]
    assert float(pct.min()) == 0.0 and float(pct.max()) == 1.0
    assert float(mm[0, 0, 0, 0]) == 0.0 and float(mm[0, -1, -1, -1]) == 1.0
    assert float(data.max()) == 999.0  # not modified in place


def test_large_images_use_an_unaliased_sample(monkeypatch):
    monkeypatch.setattr(_util, "PERCENTILE_SAMPLE", 1000)
    # a volume whose columns differ: a stride that aliases with the row length would see only one column
    data = torch.arange(64.0).repeat(64 * 8).reshape(1, 8, 64, 64)
    out = percentile_scale(_mt(data), 0, 100)
    assert float(out.max()) == 1.0 and float(out.min()) == 0.0


def test_non_finite_values_are_replaced_and_constant_images_survive():
    data = _mt(torch.tensor([float("nan"), float("inf"), -float("inf"), 2.0]).reshape(1, 4, 1, 1))
    clean = ensure_float(data)
    assert torch.isfinite(clean).all() and clean.flatten().tolist() == [0.0, 2.0, 2.0, 2.0]
    constant = zscore(_mt(np.full((1, 3, 3, 3), 7.0)))
    assert torch.isfinite(constant).all() and float(constant.abs().max()) == 0.0
