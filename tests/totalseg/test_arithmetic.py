"""The default path takes TotalSegmentator's (nnU-Net's) arithmetic: the same labels as ``--exact`` while the
part's float16 logits fit the budget, medseg's memory-bounded engine above it, and a compiled CPU runtime only
where it can pay off."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

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


class _Model:
    def __init__(self):
        self.calls = []

    def use_runtime(self, backend, precision):
        self.calls.append((backend, precision))
        return type("Summary", (), {"describe": lambda self: f"{backend} {precision}"})()


def test_runtime_only_where_it_can_pay_off(keep_runtime_policy):
    few, many, asked = _Model(), _Model(), _Model()
    assert "torch fp32" in pipeline.attach_runtime(few, pipeline.MIN_RUNTIME_WINDOWS - 1, pipeline.Runtime())
    assert few.calls == []   # the guard's PyTorch pass would cost more than the runtime saves
    pipeline.attach_runtime(many, pipeline.MIN_RUNTIME_WINDOWS, pipeline.Runtime())
    assert many.calls == [("auto", "auto")]   # OpenVINO fp32 behind the accuracy guard
    pipeline.attach_runtime(asked, 1, pipeline.Runtime("openvino", "bf16"))
    assert asked.calls == [("openvino", "bf16")]   # an explicit choice is always used


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
