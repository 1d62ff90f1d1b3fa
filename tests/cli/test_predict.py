import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.io import read_image, write_image
from tests.conftest import random_oblique_affine
from tests.inference._models import (
    WEIGHTS_FILE,
    expected,
    noise_volume,
    register_threshold,
    weights_bytes,
)

runner = CliRunner()


@pytest.fixture
def model_args(tmp_path):
    name = register_threshold()
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / WEIGHTS_FILE).write_bytes(weights_bytes())
    return ["--model", name, "--weights-dir", str(weights), "--device", "cpu", "--threads", "1"]


def test_one_scan_to_one_file(tmp_path, rng, model_args):
    volume = noise_volume((20, 15, 10), rng)
    affine = random_oblique_affine(rng)
    write_image(volume[None], tmp_path / "scan.nrrd", affine=affine)
    result = runner.invoke(cli_main.app, ["predict", str(tmp_path / "scan.nrrd"), "-o", str(tmp_path / "seg.nrrd"),
                                          "--stats", *model_args])
    assert result.exit_code == 0, result.output
    seg = read_image(tmp_path / "seg.nrrd")
    np.testing.assert_allclose(seg.affine.numpy(), affine, atol=1e-5)
    np.testing.assert_array_equal(seg[0].numpy(), expected(read_image(tmp_path / "scan.nrrd")[0].numpy()))
    sidecar = json.loads((tmp_path / "seg.json").read_text())
    assert sidecar["model"]["full_name"] == "medseg_test_threshold.fixed"
    assert (tmp_path / "seg_stats.csv").read_text().startswith("label,name,voxels,volume_ml")


def test_folder_with_a_bad_case_exits_1_and_resume_skips(tmp_path, rng, model_args):
    (tmp_path / "in").mkdir()
    for i in range(2):
        write_image(noise_volume((10, 12, 8), rng)[None], tmp_path / "in" / f"c{i}.mha", affine=np.eye(4))
    (tmp_path / "in" / "bad.mha").write_text("not an image")
    args = ["predict", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *model_args]
    first = runner.invoke(cli_main.app, args)
    assert first.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c0.json", "c0.mha", "c1.json", "c1.mha"]
    (tmp_path / "in" / "bad.mha").unlink()
    second = runner.invoke(cli_main.app, [*args, "--resume"])
    assert second.exit_code == 0 and "0 done, 2 skipped, 0 failed" in second.output


def test_usage_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, model_args):
    monkeypatch.setattr(sys, "argv", ["medseg", "predict", str(tmp_path / "missing.nii.gz"), *model_args])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.run()
    assert exit_info.value.code == 2
    assert "input not found" in capsys.readouterr().err


def test_help_has_examples():
    result = runner.invoke(cli_main.app, ["predict", "--help"])
    assert result.exit_code == 0 and "medseg predict scan.nii.gz -o seg.nii.gz" in result.output


def test_no_model_and_no_local_weights_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDSEG_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    from medseg.models import weights

    monkeypatch.setattr(weights, "PACKAGE_PRETRAINED", tmp_path / "none")
    write_image(np.zeros((1, 4, 4, 4), np.float32), tmp_path / "scan.nii.gz", affine=np.eye(4))
    monkeypatch.setattr(sys, "argv", ["medseg", "predict", str(tmp_path / "scan.nii.gz")])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.run()
    assert exit_info.value.code == 2
    assert "no pretrained weights were found locally" in capsys.readouterr().err


def test_cpu_backend_gives_the_same_labels_as_torch(tmp_path):
    import pytest

    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    from medseg.io import read_image
    from tests.conftest import SAMPLE

    outs = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / f"{backend}.nii.gz"
        result = runner.invoke(cli_main.app, ["predict", str(SAMPLE), "-o", str(out), "--backend", backend, "--no-tta"])
        assert result.exit_code == 0, result.output
        outs[backend] = read_image(out).as_tensor()
    assert (outs["torch"] == outs["openvino"]).float().mean() > 0.999   # the accuracy guard
