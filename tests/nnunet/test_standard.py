"""`medseg predict --model FOLDER` through medseg's batch path: sidecar with the run block and the fold
sha256s, --stats, --resume skipping finished cases, multi-channel cases, and refusals."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.core.hashing import sha256_file
from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._synthetic import make_folder, write_scan

runner = CliRunner()


def test_sidecar_stats_and_resume(tmp_path):
    folder = make_folder(tmp_path / "results", folds=("0", "1"))
    scans = tmp_path / "scans"
    write_scan(scans / "a_0000.nii.gz", seed=1)
    out = tmp_path / "out"
    args = ["predict", str(scans), "--model", str(folder), "-o", str(out), "--no-tta", "--stats", "--resume"]
    result = runner.invoke(cli_main.app, args)
    assert result.exit_code == 0, result.output
    sidecar = json.loads((out / "a.json").read_text())
    assert sidecar["status"] == "complete"
    assert sidecar["run"]["backend"] == "torch" and sidecar["run"]["tta"]["mirroring"] is False
    pins = {f: sha256_file(folder / f"fold_{f}" / "checkpoint_final.pth") for f in ("0", "1")}
    assert sidecar["settings"]["fold_sha256"] == pins
    assert sidecar["parameters"]["nnunet"]["folds"] == ["0", "1"] and sidecar["parameters"]["stats"] is True
    assert (out / "a_stats.csv").is_file() and "labels" in sidecar["outputs"]
    model = NnUNetModel.load(folder)
    direct = sitk.GetArrayFromImage(model.predict([scans / "a_0000.nii.gz"], tta=False))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "a.nii.gz"))), direct)

    before = (out / "a.nii.gz").stat().st_mtime_ns
    write_scan(scans / "b_0000.nii.gz", seed=2)
    result = runner.invoke(cli_main.app, args)
    assert result.exit_code == 0, result.output
    assert "1 done, 1 skipped" in result.output
    assert (out / "a.nii.gz").stat().st_mtime_ns == before and (out / "b.json").is_file()
    # --exact is another result: --resume runs it again
    result = runner.invoke(cli_main.app, [*args, "--exact"])
    assert result.exit_code == 0 and "2 done, 0 skipped" in result.output, result.output


def test_multichannel_case_and_runtime_refusals(tmp_path):
    folder = make_folder(tmp_path / "results", channels=2)
    scans = tmp_path / "scans"
    write_scan(scans / "c_0000.nii.gz", seed=1)
    write_scan(scans / "c_0001.nii.gz", seed=2)
    result = runner.invoke(cli_main.app, ["predict", str(scans), "--model", str(folder), "-o", str(tmp_path / "o"),
                                          "--no-tta"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "c.json").read_text())["input"]["path"].endswith("c_0000.nii.gz")
    for option in (["--backend", "openvino"], ["--precision", "bf16"]):
        result = runner.invoke(cli_main.app, ["predict", str(scans), "--model", str(folder), "-o",
                                              str(tmp_path / "x"), *option])
        assert result.exit_code == 2 and "not available for nnU-Net folders" in result.output
        assert not (tmp_path / "x").exists()


def test_python_api_takes_a_folder(tmp_path):
    import medseg
    from medseg import api

    folder = make_folder(tmp_path / "results")
    scan = write_scan(tmp_path / "s_0000.nii.gz", seed=3)
    labels = medseg.predict(scan, model=str(folder), tta=False)
    direct = sitk.GetArrayFromImage(NnUNetModel.load(folder).predict([scan], tta=False))
    np.testing.assert_array_equal(labels[0].numpy(), direct.transpose(2, 1, 0))
    summary = api.predict_files([scan], tmp_path / "out", model=str(folder), tta=False)
    assert summary.count("done") == 1 and (tmp_path / "out" / "s_0000.json").is_file()
