"""``medseg predict`` with SAUNA (regression) models: --threshold, --save-soft, and a trained checkpoint."""
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.io import read_image, write_image
from tests.conftest import random_oblique_affine
from tests.inference import _models as softmax_models
from tests.inference._models import smooth_volume
from tests.inference._sauna_models import WEIGHTS_FILE, register_sauna, weights_bytes

runner = CliRunner()


def _weights_dir(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / WEIGHTS_FILE).write_bytes(weights_bytes())
    (weights / softmax_models.WEIGHTS_FILE).write_bytes(softmax_models.weights_bytes())
    return weights


@pytest.fixture
def sauna_args(tmp_path):
    return ["--model", register_sauna(), "--weights-dir", str(_weights_dir(tmp_path)), "--device", "cpu",
            "--threads", "1", "--no-tta"]


@pytest.fixture
def scan(tmp_path, rng):
    """An oblique, anisotropic scan in NRRD (the soft map is NIfTI whatever the input format)."""
    affine = random_oblique_affine(rng, spacing=(0.8, 1.1, 2.2))
    write_image(smooth_volume((26, 20, 12), rng)[None], tmp_path / "scan.nrrd", affine=affine)
    return tmp_path / "scan.nrrd", affine


def test_mask_is_the_thresholded_soft_map_in_the_scans_geometry(tmp_path, scan, sauna_args):
    path, affine = scan
    masks = []
    for threshold in ("0.4", "0.6"):
        out = tmp_path / f"seg_{threshold}.nrrd"
        result = runner.invoke(cli_main.app, ["predict", str(path), "-o", str(out), "--threshold", threshold,
                                              "--save-soft", *sauna_args])
        assert result.exit_code == 0, result.output
        seg = read_image(out)
        soft = read_image(tmp_path / f"seg_{threshold}_soft.nii.gz")
        assert soft.meta["original_dtype"] == "float32" and soft.shape == seg.shape == (1, 26, 20, 12)
        np.testing.assert_allclose(soft.affine.numpy(), affine, atol=1e-5)
        np.testing.assert_allclose(seg.affine.numpy(), affine, atol=1e-5)
        values = soft[0].numpy()
        assert 0.0 <= values.min() < float(threshold) < values.max() <= 1.0
        np.testing.assert_array_equal(seg[0].numpy(), (values > float(threshold)).astype(np.uint8))
        masks.append(seg[0].numpy().astype(bool))
        sidecar = json.loads((tmp_path / f"seg_{threshold}.json").read_text())
        assert sidecar["parameters"]["threshold"] == float(threshold)
        assert sidecar["outputs"]["soft"]["path"] == f"seg_{threshold}_soft.nii.gz"
    assert masks[1].sum() < masks[0].sum() and not (masks[1] & ~masks[0]).any()


def test_a_bad_threshold_is_one_line_exit_2(tmp_path, scan, sauna_args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["medseg", "predict", str(scan[0]), "--threshold", "1.5", *sauna_args])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.run()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "threshold must lie strictly between 0 and 1, got 1.5" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("scan_seg*"))


def test_save_soft_with_a_softmax_model_is_a_clear_error(tmp_path, scan):
    args = ["predict", str(scan[0]), "--model", softmax_models.register_threshold(), "--weights-dir",
            str(_weights_dir(tmp_path)), "--device", "cpu", "--save-soft"]
    result = runner.invoke(cli_main.app, args)
    assert result.exit_code == 2
    assert "--save-soft writes the soft map of regression (SAUNA) models" in result.output
    assert "--probabilities" in result.output


def test_a_trained_sauna_checkpoint_predicts_with_its_own_card(tmp_path, rng):
    """Train a few SAUNA steps, then `medseg predict --model stunet_t --checkpoint best.pt`: the card saved in
    the checkpoint (tanh head with one output per class, planned window) is what prediction uses."""
    from medseg.training import fit, load_recipe
    from tests.training.conftest import make_msd_dataset

    data = make_msd_dataset(tmp_path / "data", n=3, shape=(16, 16, 16))
    recipe = load_recipe(None, [
        f"data.dataset='{data}'", "data.val_fraction=0.34", "model.name='stunet_t'", "model.overrides={width = 4}",
        "plan.roi_size=[16, 16, 16]", "train.epochs=1", "train.iterations_per_epoch=2", "train.batch_size=1",
        "train.num_workers=0", "train.val_every=1", "train.threads=1", f"train.output='{tmp_path / 'run'}'",
        "train.target='sauna'", "train.optimizer='adamw'", "train.lr=1e-3",
    ])
    fit(recipe)
    scan = tmp_path / "scan.nii.gz"
    write_image(rng.normal(0, 1, (1, 18, 17, 16)).astype(np.float32), scan,
                affine=random_oblique_affine(rng, spacing=(1.0, 1.0, 1.0)))
    result = runner.invoke(cli_main.app, [
        "predict", str(scan), "-o", str(tmp_path / "seg.nii.gz"), "--model", "stunet_t",
        "--checkpoint", str(tmp_path / "run" / "best.pt"), "--device", "cpu", "--threads", "1", "--fast",
        "--save-soft", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    soft = read_image(tmp_path / "seg_soft.nii.gz", allow_multichannel=True)
    seg = read_image(tmp_path / "seg.nii.gz")
    assert soft.shape == (2, 18, 17, 16)      # one soft channel per foreground class (a, b)
    values = soft.numpy()
    best = values.max(0)
    expected = np.where(best > 0.5, values.argmax(0) + 1, 0)
    np.testing.assert_array_equal(seg[0].numpy(), expected)
    sidecar = json.loads((tmp_path / "seg.json").read_text())
    assert sidecar["model"]["card"]["activation"] == "regression"
    assert sidecar["labels"] == {"0": "background", "1": "a", "2": "b"}
