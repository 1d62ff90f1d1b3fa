"""``medseg train`` on a cascade recipe: stage 1 by folds (out-of-fold priors), stage 2 on image + priors in
ROIs, resumable stage by stage; label-set mismatch is an error; then ``medseg predict`` runs the result."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medseg.cascade.cascade_training import apply_cascade_overrides, load_cascade_recipe
from medseg.cascade.train_cascade import is_cascade_recipe, roi_crops
from medseg.cli import main as cli_main
from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.io import read_image
from medseg.training.prepare import TrainingData
from tests.cascade._data import make_dataset, recipe_text

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    dataset = make_dataset(tmp_path / "boxes")
    (tmp_path / "pipelines" / "cascade").mkdir(parents=True)
    recipe = tmp_path / "pipelines" / "cascade" / "boxes.toml"
    recipe.write_text(recipe_text(dataset, tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path, recipe


def _stub_fit(calls):
    """A ``fit`` that records what each stage gets and saves the untrained model (no optimisation)."""
    from medseg.training.checkpoint import save_checkpoint
    from medseg.training.prepare import build_model_for

    def fit(recipe, *, data, resume=False, **kw):
        calls.append((recipe.train.output, data))
        model = build_model_for(recipe, data)
        out = Path(recipe.train.output)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out / "last.pt", model=model.state_dict(), card=model.card.to_dict(), recipe=recipe.to_dict())

    return fit


def test_stages_get_out_of_fold_priors_and_resume_skips_finished_stages(project):
    from medseg.cascade.train_cascade import train_cascade

    root, recipe = project
    calls = []
    result = train_cascade(recipe, fit=_stub_fit(calls))
    assert result.ran == ["stage 1 fold 0", "stage 1 fold 1", "stage 1", "stage 2"]
    folds = {out: data for out, data in calls}
    f0, f1 = folds[str(root / "runs" / "stage1" / "fold_0")], folds[str(root / "runs" / "stage1" / "fold_1")]
    for fold in (f0, f1):                                   # each fold validates on exactly what it did not train on
        assert not {c["case"] for c in fold.train} & {c["case"] for c in fold.val}
    assert {c["case"] for c in f0.val} | {c["case"] for c in f1.val} == {"case0", "case1", "case2"}
    stage2 = folds[str(root / "runs" / "stage2")]
    assert stage2.card.in_channels == 2 and all(c["case"].endswith(":organ") for c in stage2.train)
    assert all(c["image"].shape[0] == 2 and c["image"].shape[1:] == c["label"].shape[1:] for c in stage2.train)
    ledger = json.loads((root / "runs" / "stage2" / "oof_priors.json").read_text())
    assert all(case not in r["trained_on"] for case, r in ledger.items()) and len(ledger) == 3
    assert (root / "runs" / "stage2" / "best.pt").is_file()      # no validation cases: best = last

    calls.clear()
    again = train_cascade(recipe, resume=True, fit=_stub_fit(calls))
    assert calls == [] and len(again.skipped) == 4
    (root / "runs" / "stage2" / "done.json").unlink()              # an unfinished stage 2 runs again
    train_cascade(recipe, resume=True, fit=_stub_fit(calls))
    assert [out for out, _ in calls] == [str(root / "runs" / "stage2")]
    with pytest.raises(MedsegError, match="another recipe"):
        train_cascade(recipe, resume=True, overrides=["stage1.train.lr=0.5"], fit=_stub_fit(calls))


@pytest.mark.slow
def test_train_both_stages_resume_and_predict(project):
    root, recipe = project
    first = runner.invoke(cli_main.app, ["train", str(recipe), "--device", "cpu"])
    assert first.exit_code == 0, first.output
    assert "4 stages run, 0 skipped" in first.output
    for path in ("stage1/fold_0/best.pt", "stage1/fold_1/best.pt", "stage1/best.pt", "stage2/best.pt"):
        assert (root / "runs" / path).is_file(), path
    # leakage guard: every case's stage-2 prior came from the fold model that held it out
    ledger = json.loads((root / "runs" / "stage2" / "oof_priors.json").read_text())
    assert sorted(ledger) == ["case0", "case1", "case2"]
    for case, record in ledger.items():
        assert case not in record["trained_on"] and f"fold_{record['fold']}" in record["model"]
    # stage 2 really takes image + prior channels, at its own (finer) spacing
    state = torch.load(root / "runs" / "stage2" / "best.pt", weights_only=True)
    assert state["card"]["in_channels"] == 2 and state["card"]["channel_names"][1] == "prior_organ"
    assert state["card"]["spacing"] == [2.0, 2.0, 2.0]
    assert json.loads((root / "runs" / "stage1" / "plan.json").read_text())["card"]["spacing"] == [4.0, 4.0, 4.0]

    again = runner.invoke(cli_main.app, ["train", str(recipe), "--device", "cpu", "--resume"])
    assert again.exit_code == 0 and "0 stages run, 4 skipped" in again.output, again.output
    changed = runner.invoke(cli_main.app, ["train", str(recipe), "--resume", "--set", "stage2.train.lr=0.02"])
    assert changed.exit_code == 2 and "another recipe" in changed.output

    result = runner.invoke(cli_main.app, ["predict", "boxes/imagesTr/case0.nii.gz", "-o", "seg.nii.gz",
                                          "--model", "cascade.boxes", "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    seg, image = read_image(root / "seg.nii.gz"), read_image(root / "boxes" / "imagesTr" / "case0.nii.gz")
    assert seg.shape == image.shape
    np.testing.assert_allclose(seg.affine.numpy(), image.affine.numpy(), atol=1e-5)


def test_label_set_mismatch_is_a_clear_error(tmp_path):
    dataset = make_dataset(tmp_path / "boxes", n=2)
    bad = tmp_path / "bad.toml"
    bad.write_text(recipe_text(dataset, tmp_path / "runs", labels2={"0": "background", "1": "liver"}))
    assert is_cascade_recipe(bad)
    with pytest.raises(MedsegError, match="label sets differ"):
        load_cascade_recipe(bad)
    result = runner.invoke(cli_main.app, ["train", str(bad)])
    assert result.exit_code == 2 and "label sets differ" in result.output


def test_overrides_reach_one_or_both_stages(tmp_path):
    raw = apply_cascade_overrides({"stage1": {}, "stage2": {}},
                                  ["stage1.train.epochs=3", "train.threads=1", "cascade.folds=4"])
    assert raw["stage1"]["train"] == {"epochs": 3, "threads": 1} and raw["stage2"]["train"] == {"threads": 1}
    assert raw["cascade"]["folds"] == 4
    with pytest.raises(MedsegError, match="expected"):
        apply_cascade_overrides({}, ["epochs=3"])


def test_roi_crops_segment_the_organ_and_reject_false_detections():
    card = ModelCard(name="m", spatial_dims=3, in_channels=2, out_channels=2, labels=("background", "organ"),
                     channel_names=("image", "prior_organ"))
    image = torch.zeros((2, 40, 40, 40))
    label = torch.zeros((1, 40, 40, 40), dtype=torch.int64)
    label[0, 10:14, 10:14, 10:14] = 1
    found = image.clone()
    found[1, 9:15, 10:14, 10:14] = 0.9                      # the prior sees the organ (a bit too long)
    wrong = image.clone()
    wrong[1, 30:34, 30:34, 30:34] = 0.9                     # the prior fires elsewhere
    data = TrainingData([{"case": "a", "image": found, "label": label},
                         {"case": "b", "image": image, "label": label},
                         {"case": "c", "image": wrong, "label": label}], [], card)
    crops = roi_crops(data, ["organ"], (2.0, 2.0, 2.0), margin_mm=4.0)
    assert [c["case"] for c in crops.train] == ["a:organ", "b:organ", "c:organ", "c:organ:prior"]
    assert all(c["image"].shape == (2, 8, 8, 8) for c in crops.train)    # organ box + 2 voxels each side
    assert [int(c["label"].sum()) for c in crops.train] == [64, 64, 64, 0]
    assert float(crops.train[3]["image"][1].max()) == pytest.approx(0.9)  # the false detection, prior kept
