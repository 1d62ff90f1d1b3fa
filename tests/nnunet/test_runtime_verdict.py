"""The accuracy guard's verdict on an nnU-Net result folder, end to end through ``medseg predict``: the sidecar
names the runtime that was refused (not "torch"), a later run remembers the refusal without loading that runtime,
and a passed runtime runs later cases without the guard's PyTorch window."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medseg.backends import openvino_backend
from medseg.cli import main as cli_main
from medseg.inference import runtime as guarded_runtime
from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._fixtures import FIXTURES, fixture_names, read

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="medseg[cpu] not installed")
runner = CliRunner()
CASE = "hippocampus_033"


@pytest.fixture
def hippo(tmp_path, monkeypatch):
    if "hippo_3d" not in fixture_names():
        pytest.skip("fixture missing")
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path / "compiled"))   # a fresh cache: no earlier verdict
    return FIXTURES / "hippo_3d" / "model", FIXTURES / "hippo_3d" / "inputs" / f"{CASE}_0000.nii.gz"


def _predict(folder, scan, out) -> dict:
    result = runner.invoke(cli_main.app, ["predict", str(scan), "--model", str(folder), "-o", str(out), "--no-tta"])
    assert result.exit_code == 0, result.output
    return json.loads((out / f"{CASE}.json").read_text())["run"]


def _torch_labels(folder, scan) -> np.ndarray:
    return sitk.GetArrayFromImage(NnUNetModel.load(folder).predict([scan], tta=False))


def test_a_refused_runtime_is_named_in_the_sidecar_and_not_loaded_again(hippo, tmp_path, monkeypatch):
    folder, scan = hippo
    real_call = openvino_backend.OpenVINORunner.__call__

    def broken(self, batch):   # a runtime that answers wrongly: every window all background
        out = real_call(self, batch)
        out[:, 0] = out.max() + 10.0
        return out

    monkeypatch.setattr(openvino_backend.OpenVINORunner, "__call__", broken)
    run = _predict(folder, scan, tmp_path / "first")
    assert run["backend"] == "torch" and run["precision"] == "fp32", run
    assert "openvino fp32 failed the accuracy guard" in run["backend_reason"], run["backend_reason"]
    reference = _torch_labels(folder, scan)
    np.testing.assert_array_equal(read(tmp_path / "first" / f"{CASE}.nii.gz"), reference)

    def never(*args, **kwargs):
        raise AssertionError("a runtime refused on an earlier run was loaded again")

    monkeypatch.setattr(openvino_backend.OpenVINORunner, "__init__", never)
    run = _predict(folder, scan, tmp_path / "second")
    assert run["backend"] == "torch", run
    assert "openvino fp32 failed the accuracy guard against PyTorch fp32 on an earlier run" in run["backend_reason"]
    np.testing.assert_array_equal(read(tmp_path / "second" / f"{CASE}.nii.gz"), reference)


def test_a_passed_runtime_runs_later_cases_without_the_pytorch_window(hippo, tmp_path, monkeypatch):
    folder, scan = hippo
    run = _predict(folder, scan, tmp_path / "first")
    assert run["backend"] == "openvino" and "guarded: guard Dice" in run["backend_reason"], run
    reference = guarded_runtime.GuardedRuntime._torch
    calls = []

    def counting(self, x):
        calls.append(tuple(x.shape))
        return reference(self, x)

    monkeypatch.setattr(guarded_runtime.GuardedRuntime, "_torch", counting)
    run = _predict(folder, scan, tmp_path / "second")
    assert run["backend"] == "openvino" and "passed on an earlier run" in run["backend_reason"], run
    assert calls == []
    np.testing.assert_array_equal(read(tmp_path / "second" / f"{CASE}.nii.gz"),
                                  read(tmp_path / "first" / f"{CASE}.nii.gz"))
