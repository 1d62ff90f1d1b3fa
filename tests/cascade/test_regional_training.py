"""DeepOrgan's regional stage in a cascade recipe: training on superpixels of ROI crops, the recipe switch,
resume, and loading it for prediction (clear error when its weights are missing)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.cascade.cascade_training import (
    apply_cascade_overrides,
    cascade_recipe_from_dict,
    load_cascade_recipe,
)
from medseg.cascade.regional_training import (
    RegionalConfig,
    fit_regional,
    load_regional,
    regional_config_from_dict,
)
from medseg.cascade.superpixels import RegionalStage
from medseg.core.errors import MedsegError
from tests.cascade._data import make_dataset, recipe_text

TINY = "[regional]\nn_segments = 40\nscales = [1.0, 2.0]\npatch = 8\nwidth = 4\niterations = 4\nbatch_size = 16\n"


def _blob(seed: int, shape=(24, 24, 24), r=5):
    """Image + prior channels with a bright ball (the organ) at a random place; label 1 on the ball."""
    rng = np.random.default_rng(seed)
    centre = rng.integers(r + 2, np.array(shape) - r - 2)
    g = np.indices(shape)
    truth = sum((g[i] - c) ** 2 for i, c in enumerate(centre)) <= r * r
    image = truth + rng.normal(0, 0.1, shape)
    prior = np.clip(truth + rng.normal(0, 0.2, shape), 0, 1)       # a noisy stage-1 probability
    x = torch.from_numpy(np.stack([image, prior]).astype(np.float32))
    return x, torch.from_numpy(truth[None].astype(np.int64)), truth


def test_regional_training_learns_the_blob_and_reloads(tmp_path):
    cfg = RegionalConfig(n_segments=60, scales=[1.0, 2.0], patch=8, width=8, iterations=120, batch_size=32, lr=3e-3)
    train = [(x, y, 1) for x, y, _ in (_blob(s) for s in range(3))]
    val = [(x, y, 1) for x, y, _ in (_blob(10),)]
    best = fit_regional(train, cfg, tmp_path / "regional", val=val, labels=("background", "organ"))
    assert best == tmp_path / "regional" / "best.pt" and not list(best.parent.glob("*.tmp*"))
    state = torch.load(best, weights_only=True)
    assert state["settings"]["n_segments"] == 60 and state["in_channels"] == 2 and state["history"]

    stage = load_regional(best, in_channels=2)
    assert isinstance(stage, RegionalStage) and stage.scales == (1.0, 2.0) and stage.patch == 8
    x, _, truth = _blob(20)                                          # an unseen volume
    prob = stage(x).numpy()
    assert prob.shape == truth.shape
    assert prob[truth].mean() > 0.6 and prob[~truth].mean() < 0.1    # untrained: ~0.57 both
    with pytest.raises(MedsegError, match="takes 2 channels"):
        load_regional(best, in_channels=3)


def test_regional_settings_are_validated_with_suggestions():
    assert regional_config_from_dict({"n_segments": 50, "scales": [1, 2]}).scales == [1.0, 2.0]
    with pytest.raises(MedsegError, match="regional.n_segment") as err:
        regional_config_from_dict({"n_segment": 50})
    assert "n_segments" in err.value.hint
    with pytest.raises(MedsegError, match="invalid regional settings"):
        regional_config_from_dict({"iterations": 0})
    with pytest.raises(MedsegError, match="cascade.superpixel") as err:
        cascade_recipe_from_dict({"cascade": {"superpixel": True}, "stage1": {}, "stage2": {}})
    assert "superpixels" in err.value.hint
    raw = apply_cascade_overrides({"stage1": {}, "stage2": {}}, ["regional.iterations=7", "cascade.superpixels=true"])
    recipe = cascade_recipe_from_dict(raw)
    assert recipe.superpixels is True and recipe.regional.iterations == 7


def _stub_fit(calls):
    """A ``fit`` that saves the untrained stage model (no optimisation)."""
    from medseg.training.checkpoint import save_checkpoint
    from medseg.training.prepare import build_model_for

    def fit(recipe, *, data, resume=False, **kw):
        calls.append(recipe.train.output)
        model = build_model_for(recipe, data)
        out = Path(recipe.train.output)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out / "last.pt", model=model.state_dict(), card=model.card.to_dict(), recipe=recipe.to_dict())

    return fit


@pytest.fixture
def project(tmp_path, monkeypatch):
    dataset = make_dataset(tmp_path / "boxes")
    (tmp_path / "pipelines" / "cascade").mkdir(parents=True)
    recipe = tmp_path / "pipelines" / "cascade" / "boxes.toml"
    text = recipe_text(dataset, tmp_path / "runs").replace("[cascade]\n", "[cascade]\nsuperpixels = true\n", 1)
    recipe.write_text(text + TINY)
    monkeypatch.chdir(tmp_path)
    return tmp_path, recipe


def test_recipe_switch_trains_resumes_and_loads_the_regional_stage(project):
    from medseg.cascade.loader import build_cascade
    from medseg.cascade.predictor import build_cascade_predictor
    from medseg.cascade.train_cascade import train_cascade

    root, recipe = project
    calls = []
    result = train_cascade(recipe, fit=_stub_fit(calls))
    assert result.ran[-2:] == ["stage 2", "regional stage"] and result.regional == root / "runs" / "regional"
    best = root / "runs" / "regional" / "best.pt"
    assert best.is_file() and (root / "runs" / "regional" / "done.json").is_file()
    assert torch.load(best, weights_only=True)["in_channels"] == 2      # image + out-of-fold prior, like stage 2

    stamp = best.stat().st_mtime_ns
    again = train_cascade(recipe, resume=True, fit=_stub_fit(calls))
    assert "regional stage" in again.skipped and best.stat().st_mtime_ns == stamp
    with pytest.raises(MedsegError, match="another recipe"):
        train_cascade(recipe, resume=True, overrides=["regional.n_segments=30"], fit=_stub_fit(calls))

    pipeline = build_cascade(recipe)
    assert isinstance(pipeline.regional, RegionalStage) and pipeline.regional.n_segments == 40
    predictor = build_cascade_predictor(str(recipe), device="cpu")
    assert predictor.pipeline.regional is not None and len(predictor.stages["regional"]["sha256"]) == 64
    assert build_cascade(load_cascade_recipe(recipe, ["cascade.superpixels=false"])).regional is None

    best.unlink()
    with pytest.raises(MedsegError, match="regional-stage weights not found") as err:
        build_cascade(recipe)
    assert "regional/best.pt" in str(err.value.path) and "medseg train" in err.value.hint


def test_cli_trains_and_predicts_with_the_regional_stage(project):
    from typer.testing import CliRunner

    from medseg.cli import main as cli_main
    from medseg.io import read_image

    root, recipe = project
    runner = CliRunner()
    first = runner.invoke(cli_main.app, ["train", str(recipe), "--device", "cpu"])
    assert first.exit_code == 0 and "5 stages run" in first.output, first.output
    result = runner.invoke(cli_main.app, ["predict", "boxes/imagesTr/case0.nii.gz", "-o", "seg.nii.gz",
                                          "--model", "cascade.boxes", "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert read_image(root / "seg.nii.gz").shape == read_image(root / "boxes" / "imagesTr" / "case0.nii.gz").shape
    (root / "runs" / "regional" / "best.pt").unlink()
    missing = runner.invoke(cli_main.app, ["predict", "boxes/imagesTr/case0.nii.gz", "-o", "seg2.nii.gz",
                                           "--model", "cascade.boxes", "--device", "cpu"])
    assert missing.exit_code == 2 and "regional-stage weights not found" in missing.output
