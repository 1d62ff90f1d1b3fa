"""The default path takes TotalSegmentator's (nnU-Net's) arithmetic: the same labels as ``--exact`` while the
part's float16 logits fit the budget, medseg's memory-bounded engine above it, and a compiled CPU runtime whose
accuracy guard's verdict is remembered between runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.backends.availability import is_available
from medseg.cli import main as cli_main
from medseg.io import read_image
from medseg.totalseg import pipeline
from tests.totalseg._parts import make_task, write_ct

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "tsh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "tsh"


def _predict(parts, ct, **kwargs):
    image = read_image(ct)
    return pipeline.predict(parts, 3.0, image.as_tensor().numpy()[0], image.affine.numpy(), source=ct, **kwargs)


def test_default_gives_the_exact_labels_and_the_engine_above_the_logits_budget(home, tmp_path, monkeypatch):
    parts = make_task(home, "total_fast")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(40, 34, 24), spacing=(1.5, 1.5, 1.5))  # 2x2x1 windows at 3 mm
    exact = _predict(parts, ct, exact=True)
    default = _predict(parts, ct)
    np.testing.assert_array_equal(default.labels, exact.labels)
    assert len(np.unique(exact.labels)) > 5
    assert default.runs and "nnU-Net's arithmetic, 4 window(s)" in default.runs[0]

    monkeypatch.setattr(pipeline, "LOGITS_BUDGET", 0)   # a scan too large for whole-scan logits
    engine = _predict(parts, ct)
    assert "memory-bounded engine" in engine.runs[0]
    assert (engine.labels == exact.labels).mean() > 0.95   # near-ties of 117 random heads may differ


@pytest.mark.skipif(not is_available("openvino"), reason="openvino (medseg[cpu]) not installed")
def test_the_default_runtime_remembers_its_guard_verdict_between_runs(home, tmp_path, keep_runtime_policy):
    parts = make_task(home, "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(40, 34, 24), spacing=(3.0, 3.0, 3.0))
    first = _predict(parts, ct)
    assert "openvino fp32" in first.runs[0] and "earlier run" not in first.runs[0]   # compiled and checked
    again = _predict(parts, ct)
    assert "earlier run" in again.runs[0]                # the verdict of the first run, pass or refusal
    np.testing.assert_array_equal(again.labels, first.labels)


def test_backend_is_passed_on_and_refused_with_exact(home, tmp_path):
    make_task(home, "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fastest",
                                          "--backend", "torch", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "ct_seg.json").read_text())["settings"]
    assert settings["runtime"] == {"backend": "torch", "precision": "fp32"}
    assert "nnU-Net's arithmetic" in settings["parts_run"][0]
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fastest",
                                          "--exact", "--backend", "openvino", "-o", str(tmp_path / "x.nii.gz")])
    assert result.exit_code == 2 and "--backend openvino cannot be combined with --exact" in result.output
    assert not (tmp_path / "x.nii.gz").exists()
