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
    args = ["predict", str(scans), "--model", str(folder), "-o", str(out), "--no-tta", "--stats", "--resume",
            "--backend", "torch"]
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
    sidecar = json.loads((tmp_path / "o" / "c.json").read_text())
    assert sidecar["input"]["path"].endswith("c_0000.nii.gz")
    assert sidecar["settings"]["other_channels"] == {str(scans / "c_0001.nii.gz"): sha256_file(scans / "c_0001.nii.gz")}
    for option in (["--backend", "openvino"], ["--precision", "bf16"]):
        result = runner.invoke(cli_main.app, ["predict", str(scans), "--model", str(folder), "-o",
                                              str(tmp_path / "x"), "--exact", *option])
        assert result.exit_code == 2 and "cannot be combined with --exact" in result.output
        assert not (tmp_path / "x").exists()
    result = runner.invoke(cli_main.app, ["predict", str(scans), "--model", str(folder), "-o", str(tmp_path / "x"),
                                          "--probabilities", "--overlap", "0.25"])
    assert result.exit_code == 2 and "--probabilities, --overlap not available" in result.output


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


def test_window_batch_shrinks_for_many_classes_and_little_memory():
    from medseg.nnunet.predictor import window_batch

    assert window_batch(105, (128, 128, 128), available=64 << 30) == 1   # 105 x 128^3 float32 = 880 MB a window
    assert window_batch(3, (16, 16, 16), available=64 << 30) == 8
    assert window_batch(3, (64, 64, 64), available=16 << 20) == 1


def test_many_heads_map_labels_back_without_probabilities(tmp_path, monkeypatch):
    from medseg.nnunet import predictor as nnpred

    folder = make_folder(tmp_path / "results")
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (14, 20, 12)), indexing="ij")
    image = sitk.GetImageFromArray((100 * np.exp(-(x**2 + y**2 + z**2) * 2)).astype(np.float32))  # a smooth blob
    image.SetSpacing((1.6, 1.6, 1.6))   # the model's grid is 1 mm: resampled both ways
    scan = tmp_path / "s_0000.nii.gz"
    sitk.WriteImage(image, str(scan))
    model = NnUNetModel.load(folder)
    exact = sitk.GetArrayFromImage(model.predict([scan], exact=True, tta=False))
    model.stitching = "engine"   # the memory-bounded engine (what volumes too large for nnU-Net's logits get)
    monkeypatch.setattr(nnpred, "MANY_CLASSES", 2)   # 3 heads count as many: float16 sums, labels mapped back
    seen = {}
    from medseg.inference import sliding_window

    real = sliding_window.sliding_window_labels

    def spy(*args, **kwargs):
        seen["options"] = kwargs["options"]
        return real(*args, **kwargs)

    monkeypatch.setattr(sliding_window, "sliding_window_labels", spy)
    many = sitk.GetArrayFromImage(model.predict([scan], tta=False))
    assert seen["options"].accumulate == "float16" and not seen["options"].probabilities
    # nearest-neighbour labels of a random network (noisy at the model's 1 mm) agree on ~90 % of these 1.6 mm
    # voxels (0.998 with probabilities resampled): the memory-bounded path's price on noisy label maps
    assert many.shape == exact.shape and (many == exact).mean() > 0.85
