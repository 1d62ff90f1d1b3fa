"""``medseg predict --model cascade.<name>`` and ``medseg.api``: one model name, the scan's own geometry,
the usual output files, and "not found" (empty mask, exit 0) when stage 1 finds nothing."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medseg import api
from medseg.cli import main as cli_main
from medseg.io import read_image, write_image
from tests.cascade._models import (
    STAGE1_NAME,
    STAGE2_NAME,
    register_stage_models,
    save_stage_checkpoints,
)

runner = CliRunner()
RECIPE = f"""[cascade]
margin_mm = 6.0
targets = ["organ"]
[stage1.model]
name = "{STAGE1_NAME}"
[stage1.train]
output = "runs/thr/stage1"
[stage2.model]
name = "{STAGE2_NAME}"
[stage2.train]
output = "runs/thr/stage2"
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    register_stage_models()
    (tmp_path / "pipelines" / "cascade").mkdir(parents=True)
    (tmp_path / "pipelines" / "cascade" / "thr.toml").write_text(RECIPE)
    save_stage_checkpoints(tmp_path / "runs" / "thr")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _scan(path, lo=(40, 10, 30), size=8, shape=(64, 48, 56), bright=True):
    """An LPS-style affine (flipped x, y; 2 mm), a bright box in noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.05, shape).astype(np.float32)
    truth = np.zeros(shape, bool)
    truth[tuple(slice(a, a + size) for a in lo)] = True
    if bright:
        x[truth] += 1.0
    affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    affine[:3, 3] = (100.0, 80.0, -50.0)
    write_image(x[None], path, affine=affine)
    return truth, affine


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_cli_runs_a_cascade_as_one_model(workdir):
    truth, affine = _scan(workdir / "scan.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", "scan.nii.gz", "-o", "out/seg.nii.gz", "--model", "cascade.thr",
                                          "--device", "cpu", "--threads", "1", "--stats"])
    assert result.exit_code == 0, result.output
    seg = read_image(workdir / "out" / "seg.nii.gz")
    assert tuple(seg.shape[1:]) == truth.shape
    np.testing.assert_allclose(seg.affine.numpy(), affine, atol=1e-5)
    assert _dice(seg[0].numpy() == 1, truth) > 0.85
    sidecar = json.loads((workdir / "out" / "seg.json").read_text())
    assert sidecar["model"]["full_name"] == "cascade.thr"
    settings = sidecar["settings"]
    assert settings["found"] == {"organ": True}
    assert settings["counters"]["stage2_voxels"] < 0.25 * truth.size      # full resolution only in the ROI
    assert set(settings["cascade"]["stages"]) == {"stage1", "stage2"}
    assert (workdir / "out" / "seg_stats.csv").is_file()


def test_nothing_found_is_an_empty_mask_and_exit_0(workdir):
    truth, _ = _scan(workdir / "empty.nii.gz", bright=False)
    result = runner.invoke(cli_main.app, ["predict", "empty.nii.gz", "-o", "out/", "--model", "cascade.thr",
                                          "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    seg = read_image(workdir / "out" / "empty.nii.gz")
    assert tuple(seg.shape[1:]) == truth.shape and int(seg.sum()) == 0
    sidecar = json.loads((workdir / "out" / "empty.json").read_text())
    assert sidecar["settings"]["found"] == {"organ": False}
    assert any("not found" in w for w in sidecar["warnings"])


def test_api_with_explicit_stage_weights_and_errors(workdir):
    truth, affine = _scan(workdir / "scan.nii.gz")
    w1, w2 = save_stage_checkpoints(workdir / "elsewhere")
    labels = api.predict(str(workdir / "scan.nii.gz"), model="cascade.thr", checkpoint=(w1, w2), device="cpu")
    np.testing.assert_allclose(np.asarray(labels.affine), affine, atol=1e-6)
    assert _dice(labels[0].numpy() == 1, truth) > 0.85
    folder = api.predict(torch.from_numpy(np.zeros((1, 20, 20, 20), np.float32)), model="cascade.thr",
                         checkpoint=workdir / "elsewhere", device="cpu")
    assert int(folder.sum()) == 0
    bad = runner.invoke(cli_main.app, ["predict", "scan.nii.gz", "--model", "cascade.nope", "--device", "cpu"])
    assert bad.exit_code != 0 and "cascade.thr" in bad.output                 # lists the known cascades
    probs = runner.invoke(cli_main.app, ["predict", "scan.nii.gz", "--model", "cascade.thr", "--probabilities"])
    assert probs.exit_code != 0
    missing = runner.invoke(cli_main.app, ["predict", "scan.nii.gz", "--model", "cascade.thr", "--checkpoint", "nowhere"])
    assert missing.exit_code != 0 and "weights not found" in missing.output
