"""`medseg predict --model FOLDER`, `models import-folder` and `models show` on a folder built in code."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._synthetic import make_folder, write_scan

runner = CliRunner()


def test_predict_import_show_and_pinned_hashes(tmp_path):
    folder = make_folder(tmp_path / "results", folds=("0", "1"))
    scans = tmp_path / "scans"
    write_scan(scans / "a_0000.nii.gz", seed=1)
    write_scan(scans / "b_0000.nii.gz", shape=(12, 30, 9), seed=2)
    out = tmp_path / "out"
    result = runner.invoke(cli_main.app, ["predict", str(scans), "--model", str(folder), "-o", str(out),
                                          "--folds", "0,1", "--exact", "--no-tta"])
    assert result.exit_code == 0, result.output
    for case in ("a", "b"):
        seg = sitk.ReadImage(str(out / f"{case}.nii.gz"))
        scan = sitk.ReadImage(str(scans / f"{case}_0000.nii.gz"))
        assert seg.GetSize() == scan.GetSize() and seg.GetSpacing() == scan.GetSpacing()
    model = NnUNetModel.load(folder, folds=["0", "1"])
    direct = sitk.GetArrayFromImage(model.predict([scans / "a_0000.nii.gz"], exact=True, tta=False))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "a.nii.gz"))), direct)

    weights = tmp_path / "weights"
    result = runner.invoke(cli_main.app, ["models", "import-folder", str(folder), "--name", "synth",
                                          "--weights-dir", str(weights)])
    assert result.exit_code == 0, result.output
    card = json.loads((weights / "nnunet" / "synth.json").read_text())
    assert card["labels"] == {"0": "background", "1": "a", "2": "b"} and card["channels"] == ["T1"]
    assert card["patch_size"] == [16, 16, 16] and set(card["folds"]) == {"0", "1"}
    assert all(len(f["sha256"]) == 64 for f in card["folds"].values()) and card["licence"] is None

    env = {"MEDSEG_WEIGHTS_DIR": str(weights)}
    result = runner.invoke(cli_main.app, ["models", "show", "synth"], env=env)
    assert result.exit_code == 0 and "3d_fullres" in result.output and "sha256" in result.output
    result = runner.invoke(cli_main.app, ["predict", str(scans / "a_0000.nii.gz"), "--model", "synth",
                                          "-o", str(tmp_path / "named.nii.gz")], env=env)
    assert result.exit_code == 0, result.output
    # a fold file changed after import is refused before it is loaded, and nothing is written
    ck = folder / "fold_1" / "checkpoint_final.pth"
    ck.write_bytes(ck.read_bytes() + b"\0")
    result = runner.invoke(cli_main.app, ["predict", str(scans / "a_0000.nii.gz"), "--model", "synth",
                                          "-o", str(tmp_path / "changed.nii.gz")], env=env)
    assert result.exit_code == 2 and "sha256 mismatch" in result.output
    assert not (tmp_path / "changed.nii.gz").exists()
