"""``medseg evaluate`` on predictions whose sidecars carry quality estimates reports how well they matched."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from medseg.cli.main import app
from medseg.io import write_image


def _case(folder, name, pred, ref, quality):
    write_image(pred[None].astype(np.uint8), folder / "preds" / f"{name}.nii.gz", affine=np.eye(4))
    write_image(ref[None].astype(np.uint8), folder / "refs" / f"{name}.nii.gz", affine=np.eye(4))
    (folder / "preds" / f"{name}.json").write_text(json.dumps({"status": "complete", "quality": quality}))


def test_evaluate_reports_correlation_and_caught_bad_segmentations(tmp_path):
    (tmp_path / "preds").mkdir()
    (tmp_path / "refs").mkdir()
    ref = np.zeros((12, 12, 12), dtype=np.uint8)
    ref[2:10, 2:10, 2:10] = 1
    for i, (cut, predicted) in enumerate(zip((0, 1, 2, 4, 6), (0.95, 0.85, 0.75, 0.6, 0.4))):
        pred = ref.copy()   # growing errors: actual Dice 1, 0.93, 0.86, 0.67, 0.4
        pred[2:2 + cut] = 0
        _case(tmp_path, f"case{i}", pred, ref,
              {"label_1": {"predicted_dice": predicted, "flag": predicted < 0.8, "signals": {}}})
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "preds"), str(tmp_path / "refs"), "--json",
                                      str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "Spearman(predicted, actual Dice) 1.00" in result.output
    quality = json.loads(out.read_text())["summary"]["quality"]
    assert quality["spearman"] == 1.0 and quality["structures"] == 5
    assert quality["bad"] == 2 and quality["bad_flagged"] == 2 and quality["flagged"] == 3


def test_evaluate_without_quality_estimates_says_nothing_about_them(tmp_path):
    (tmp_path / "preds").mkdir()
    (tmp_path / "refs").mkdir()
    ref = np.zeros((8, 8, 8), dtype=np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    write_image(ref[None], tmp_path / "preds" / "a.nii.gz", affine=np.eye(4))
    write_image(ref[None], tmp_path / "refs" / "a.nii.gz", affine=np.eye(4))
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "preds"), str(tmp_path / "refs"), "-j", "1"])
    assert result.exit_code == 0 and "quality estimates" not in result.output
