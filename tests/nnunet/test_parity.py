"""medseg vs nnUNetv2_predict on tiny nnU-Net v2 models trained with nnunetv2 itself (committed fixtures).

``--exact`` must give nnU-Net's labels (>= 99.99 % of voxels; measured: identical on every case). The
default path uses nnU-Net's float16 stitching and logits export whenever its full-volume logits fit (they do
for every fixture), with batched windows: per-class Dice >= 0.995 against nnU-Net on every class, however
small (the issue's goal; measured: identical on almost every case, docs/nnunet.md). The memory-bounded engine
(float32 cells, what large many-class volumes get) is held to its own looser bound on the same case, so
both default-path arithmetics stay checked. Two cases run in the default suite (the held-out case whose
spacing differs from the model's, so resampling both ways is exercised); every fixture and case runs in the
slow suite.
"""
from __future__ import annotations

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

FAST_CASE = {"hippo_3d": "hippocampus_033", "aniso": "hippocampus_033"}

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
    agreement = float((exact == expected).mean())
    assert agreement >= 0.9999, f"{name}/{case}: --exact agrees on {agreement:.6f} of voxels"
    default = sitk.GetArrayFromImage(model.predict(inputs(name, case), exact=False))
    assert model.last_tta["stitching"] == "nnunet"
    dice = dice_per_class(default, expected)
    assert float((default == expected).mean()) >= 0.999
    assert min(dice.values(), default=1.0) >= 0.995, f"{name}/{case}: default path Dice {dice}"
    model.stitching = "engine"   # the memory-bounded engine: float32 cells, near-tied logits flip
    try:
        engine = sitk.GetArrayFromImage(model.predict(inputs(name, case), exact=False))
    finally:
        model.stitching = "auto"
    dice = {c: d for c, d in dice_per_class(engine, expected).items() if (expected == c).sum() >= 500}
    assert float((engine == expected).mean()) >= 0.99
    assert min(dice.values(), default=1.0) >= 0.98, f"{name}/{case}: engine Dice {dice}"


def test_default_path_keeps_the_memory_bounded_engine_when_nnunets_logits_do_not_fit():
    from medseg.nnunet.predictor import nnunet_arithmetic_bytes, nnunet_arithmetic_fits

    # the 1.5 mm CT of bench_nnunet case (i): 6 heads x 120x126x164 voxels, 208 MB
    assert nnunet_arithmetic_fits(6, 120 * 126 * 164, available=8 << 30)
    # 105 classes on 512x512x400 (bench case ii): 154 GB of nnU-Net's stitching and export
    assert nnunet_arithmetic_bytes(105, 512 * 512 * 400) > 150e9
    assert not nnunet_arithmetic_fits(105, 512 * 512 * 400, available=64 << 30)
    assert nnunet_arithmetic_bytes(6, 10**6, folds=2) > nnunet_arithmetic_bytes(6, 10**6)


@pytest.mark.skipif("hippo_3d" not in fixture_names(), reason="nnU-Net fixtures not built")
def test_default_path_chooses_the_engine_under_memory_pressure(monkeypatch):
    import medseg.core.memory as memory

    model = _model("hippo_3d")
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 20)   # 1 MB free: nnU-Net's logits do not fit
    labels = sitk.GetArrayFromImage(model.predict(inputs("hippo_3d", "hippocampus_033"), tta=False))
    assert model.last_tta["stitching"] == "engine"
    assert labels.shape == read(FIXTURES / "hippo_3d" / "expected" / "hippocampus_033.nii.gz").shape


@pytest.mark.skipif(not (FIXTURES / "hippo_3d" / "expected_f01").is_dir(), reason="2-fold fixture not built")
@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param(c)
                                  for c in (cases("hippo_3d") if "hippo_3d" in fixture_names() else [])])
def test_two_fold_ensemble_matches_nnunet(case):
    expected = read(FIXTURES / "hippo_3d" / "expected_f01" / f"{case}.nii.gz")
    model = _model("hippo_3d", ("0", "1"))
    exact = sitk.GetArrayFromImage(model.predict(inputs("hippo_3d", case), exact=True))
    assert float((exact == expected).mean()) >= 0.9999
    single = read(FIXTURES / "hippo_3d" / "expected" / f"{case}.nii.gz")
    assert (single != expected).any()  # the second fold changes the result: the ensemble is really tested
