"""CPU runtimes for folder networks on the default path: ``auto`` is OpenVINO fp32 (when medseg[cpu] is
installed) checked per fold network against PyTorch fp32 by medseg's accuracy guard; explicit backends run as
asked; ``--exact`` stays PyTorch. The guard's Dice (>= GUARD_DICE per label vs PyTorch fp32) is checked here on
each network family: PlainConvUNet, ResEnc, sigmoid regions, 2D, a 105-class head and a cascade."""
from __future__ import annotations

import importlib.util
import json

import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medseg.backends import GUARD_DICE, compare_label_maps
from medseg.cli import main as cli_main
from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._fixtures import FIXTURES, fixture_names, read
from tests.nnunet._synthetic import make_folder, write_scan

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="medseg[cpu] not installed")
runner = CliRunner()
CASE = "hippocampus_033"


@pytest.fixture(autouse=True)
def compiled_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "compiled"))


def test_default_path_runs_guarded_openvino_and_records_it(tmp_path):
    if "hippo_3d" not in fixture_names():
        pytest.skip("fixture missing")
    folder = FIXTURES / "hippo_3d" / "model"
    scan = FIXTURES / "hippo_3d" / "inputs" / f"{CASE}_0000.nii.gz"
    out = tmp_path / "out"
    result = runner.invoke(cli_main.app, ["predict", str(scan), "--model", str(folder), "-o", str(out), "--no-tta"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / f"{CASE}.json").read_text())["run"]
    assert run["backend"] == "openvino" and run["precision"] == "fp32", run
    assert "guarded" in run["backend_reason"]
    torch_labels = sitk.GetArrayFromImage(NnUNetModel.load(folder).predict([scan], tta=False))
    assert compare_label_maps(read(out / f"{CASE}.nii.gz"), torch_labels).passes(GUARD_DICE)
    # --exact is nnU-Net's PyTorch arithmetic whatever the default backend
    result = runner.invoke(cli_main.app, ["predict", str(scan), "--model", str(folder), "-o", str(tmp_path / "x"),
                                          "--no-tta", "--exact"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "x" / f"{CASE}.json").read_text())["run"]["backend"] == "torch"


def _networks(tmp_path):
    out = [(FIXTURES / n / "model", FIXTURES / n / "inputs" / f"{CASE}_0000.nii.gz")
           for n in ("hippo_3d", "resenc", "regions", "hippo_2d") if n in fixture_names()]
    out.append((make_folder(tmp_path / "many", heads=105), write_scan(tmp_path / "s_0000.nii.gz", (24, 28, 20))))
    cascade = FIXTURES / "cascade" / "nnUNetTrainerMedsegTiny__nnUNetPlansCascade__3d_cascade_fullres"
    if cascade.is_dir():
        out.append((cascade, FIXTURES / "cascade" / "inputs" / f"{CASE}_0000.nii.gz"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_every_network_family_passes_the_guard(tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} not installed")
    for folder, scan in _networks(tmp_path):
        model = NnUNetModel.load(folder)
        reference = sitk.GetArrayFromImage(model.predict([scan], tta=False))
        summary = model.use_runtime(backend, "fp32")
        assert summary.backend == backend, summary.describe()
        got = sitk.GetArrayFromImage(model.predict([scan], tta=False))
        agreement = compare_label_maps(got, reference)
        assert agreement.passes(GUARD_DICE), (folder.name, agreement)
