"""Leakage guard: a stage-2 prior must come from a stage-1 model that did not train on that case."""
from pathlib import Path

import pytest
import torch

from medseg.cascade.cascade_training import (
    FoldModel,
    LeakageError,
    PriorLedger,
    assign_folds,
    fold_training_cases,
    load_cascade_recipe,
    out_of_fold_priors,
    stage2_input,
)

ROOT = Path(__file__).resolve().parents[2]
CASES = [f"case_{i:02d}" for i in range(10)]


def _fold_models(folds):
    return {k: FoldModel(k, frozenset(fold_training_cases(folds, k)), torch.nn.Identity()) for k in set(folds.values())}


def test_folds_partition_cases():
    folds = assign_folds(CASES, 3, seed=1)
    assert set(folds) == set(CASES) and sorted(set(folds.values())) == [0, 1, 2]
    sizes = [list(folds.values()).count(k) for k in range(3)]
    assert max(sizes) - min(sizes) <= 1
    assert assign_folds(CASES, 3, seed=1) == folds


def test_out_of_fold_priors_pass_and_record_the_right_model():
    folds = assign_folds(CASES, 5)
    images = {c: torch.rand(1, 4, 4, 4) for c in CASES}
    priors, ledger = out_of_fold_priors(images, folds, _fold_models(folds), lambda m, x: torch.cat([1 - x, x]))
    assert set(priors) == set(CASES)
    for case, model in ledger.records.items():
        assert case not in model.trained_on and model.fold == folds[case]
    assert stage2_input(images["case_00"], priors["case_00"]).shape == (2, 4, 4, 4)


def test_guard_raises_on_a_leaked_prior():
    folds = assign_folds(CASES, 5)
    models = _fold_models(folds)
    wrong = {c: (f + 1) % 5 for c, f in folds.items()}          # priors taken from a model that saw the case
    with pytest.raises(LeakageError, match="trained on that case"):
        out_of_fold_priors({c: torch.rand(1, 2, 2, 2) for c in CASES}, wrong, models, lambda m, x: x)
    ledger = PriorLedger()
    ledger.records["case_00"] = models[(folds["case_00"] + 1) % 5]  # e.g. tampered / stale record on disk
    with pytest.raises(LeakageError):
        ledger.verify(["case_00"])
    with pytest.raises(LeakageError, match="no stage-1 prior"):
        PriorLedger().verify(["case_01"])


def test_shipped_recipe_declares_both_stages():
    recipe = load_cascade_recipe(ROOT / "pipelines" / "cascade" / "pancreas_ct.toml")
    assert recipe.stage1.plan.spacing and recipe.stage2.plan.spacing
    assert recipe.stage1.plan.spacing[0] > recipe.stage2.plan.spacing[0]
    assert recipe.folds >= 2 and recipe.targets


def test_cascade_names_resolve_to_recipes(tmp_path):
    from medseg.cascade.loader import build_cascade, is_cascade, recipe_path
    from medseg.core.errors import MedsegError

    assert is_cascade("cascade.pancreas_ct") and not is_cascade("stunet_t")
    assert recipe_path("cascade.pancreas_ct", ROOT / "pipelines" / "cascade").name == "pancreas_ct.toml"
    with pytest.raises(MedsegError, match="no cascade recipe"):
        recipe_path("cascade.nope", ROOT / "pipelines" / "cascade")
    with pytest.raises(MedsegError, match="weights not found"):
        build_cascade(ROOT / "pipelines" / "cascade" / "pancreas_ct.toml", tmp_path / "a.pt", tmp_path / "b.pt")


def test_stage2_training_data_adds_prior_channels_and_checks_the_ledger():
    from medseg.cascade.cascade_training import stage2_training_data
    from medseg.core.card import ModelCard
    from medseg.training.prepare import TrainingData

    card = ModelCard(name="m", spatial_dims=3, in_channels=1, out_channels=2, labels=("background", "organ"))
    cases = [{"image": torch.rand(1, 4, 4, 4), "label": torch.zeros(1, 4, 4, 4, dtype=torch.int64), "case": c}
             for c in CASES]
    data = TrainingData(cases[:8], cases[8:], card)
    folds = assign_folds(CASES, 5)
    priors, ledger = out_of_fold_priors({c["case"]: c["image"] for c in cases}, folds, _fold_models(folds),
                                        lambda m, x: torch.cat([1 - x, x]))
    d2 = stage2_training_data(data, priors, ledger)
    assert d2.card.in_channels == 2 and d2.card.channel_names == ("image", "prior_organ")
    assert d2.train[0]["image"].shape == (2, 4, 4, 4) and len(d2.val) == 2
    del ledger.records["case_09"]
    with pytest.raises(LeakageError):
        stage2_training_data(data, priors, ledger)
