"""medseg vs nnUNetv2_predict on tiny nnU-Net v2 models trained with nnunetv2 itself (committed fixtures).

``--exact`` must give nnU-Net's labels (>= 99.99 % of voxels, the goal being identical); the default engine
path must stay within per-class Dice 0.995. One case per fixture runs in the default suite (the one whose
spacing differs from the model's where there is one, so resampling both ways is exercised); every held-out
case runs in the slow suite.
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._fixtures import (
    FIXTURES,
    cases,
    dice_per_class,
    fixture_names,
    inputs,
    read,
)

FAST_CASE = {"hippo_3d": "hippocampus_033", "hippo_2d": "hippocampus_033", "regions": "hippocampus_033",
             "resenc": "hippocampus_033", "aniso": "hippocampus_033", "ct": "ct_1p5mm"}

PARAMS = []
for _name in fixture_names():
    for _case in cases(_name):
        marks = [] if FAST_CASE.get(_name) == _case else [pytest.mark.slow]
        PARAMS.append(pytest.param(_name, _case, marks=marks, id=f"{_name}-{_case}"))

_models: dict[tuple, NnUNetModel] = {}


def _model(name: str, folds=("0",)) -> NnUNetModel:
    key = (name, tuple(folds))
    if key not in _models:
        _models[key] = NnUNetModel.load(FIXTURES / name / "model", folds=list(folds))
    return _models[key]


@pytest.mark.skipif(not PARAMS, reason="nnU-Net fixtures not built")
@pytest.mark.parametrize("name,case", PARAMS)
def test_exact_matches_nnunet_and_default_is_close(name, case):
    expected = read(FIXTURES / name / "expected" / f"{case}.nii.gz")
    model = _model(name)
    exact = sitk.GetArrayFromImage(model.predict(inputs(name, case), exact=True))
    assert exact.shape == expected.shape
    assert (expected > 0).any() and len(np.unique(expected)) > 1  # a non-trivial reference
    agreement = float((exact == expected).mean())
    assert agreement >= 0.9999, f"{name}/{case}: --exact agrees on {agreement:.6f} of voxels"
    default = sitk.GetArrayFromImage(model.predict(inputs(name, case), exact=False))
    dice = dice_per_class(default, expected)
    assert min(dice.values()) >= 0.995, f"{name}/{case}: default path Dice {dice}"


@pytest.mark.skipif(not (FIXTURES / "hippo_3d" / "expected_f01").is_dir(), reason="2-fold fixture not built")
@pytest.mark.parametrize("case", [pytest.param(c, marks=[] if c == "hippocampus_033" else [pytest.mark.slow])
                                  for c in (cases("hippo_3d") if "hippo_3d" in fixture_names() else [])])
def test_two_fold_ensemble_matches_nnunet(case):
    expected = read(FIXTURES / "hippo_3d" / "expected_f01" / f"{case}.nii.gz")
    model = _model("hippo_3d", ("0", "1"))
    exact = sitk.GetArrayFromImage(model.predict(inputs("hippo_3d", case), exact=True))
    assert float((exact == expected).mean()) >= 0.9999
    single = read(FIXTURES / "hippo_3d" / "expected" / f"{case}.nii.gz")
    assert (single != expected).any()  # the second fold changes the result: the ensemble is really tested
