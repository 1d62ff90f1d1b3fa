"""``medseg evaluate`` on folders: table, JSON schema, report folder, errors as one line."""
import json

import numpy as np
from typer.testing import CliRunner

from medseg.cli.main import app
from tests.reports.conftest import AFFINE, folders, save  # noqa: F401  (fixture)

runner = CliRunner()

ISSUE_KEYS = ["case", "label", "label_name", "dice", "iou", "hd", "hd95", "assd", "nsd", "empty_reference",
              "empty_prediction"]


def test_folders_with_json_and_report(folders, tmp_path):  # noqa: F811
    pred_dir, ref_dir = folders
    out = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(pred_dir), str(ref_dir), "--dataset-json",
                                 str(ref_dir / "dataset.json"), "--json", str(out), "--report", str(tmp_path / "rep"),
                                 "--tolerance", "2", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "liver" in result.output and "spleen" in result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert set(document) == {"cases", "summary", "definitions"}
    row = document["cases"][0]
    assert list(row)[: len(ISSUE_KEYS)] == ISSUE_KEYS
    missed = next(r for r in document["cases"] if r["case"] == "c" and r["label"] == 2)
    assert missed["hd"] is None and missed["hd95"] is None and missed["assd"] is None
    assert missed["empty_prediction"] is True and missed["distances_infinite"] is True
    assert document["summary"]["tolerance_mm"] == 2.0
    assert document["summary"]["cases_only_in_reference"] == ["lonely"]
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "metrics.csv").is_file()


def test_json_to_stdout_with_labels_and_convention(folders):  # noqa: F811
    pred_dir, ref_dir = folders
    result = runner.invoke(app, ["evaluate", str(pred_dir / "b.nii.gz"), str(ref_dir / "b.nii.gz"), "--labels", "2",
                                 "--convention", "surface-distance", "--json", "-"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [r["label"] for r in document["cases"]] == [2]
    assert "DeepMind" in document["definitions"]["convention"]


def test_label_names_from_a_model_card(folders):  # noqa: F811
    pred_dir, ref_dir = folders
    result = runner.invoke(app, ["evaluate", str(pred_dir / "a.nii.gz"), str(ref_dir / "a.nii.gz"),
                                 "--model", "stunet_t", "--labels", "posterior", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cases"][0]["label_name"] == "posterior"


def test_geometry_mismatch_is_one_line_naming_both_files(tmp_path):
    ref = np.zeros((10, 10, 8), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    save(tmp_path / "gt.nii.gz", ref)
    save(tmp_path / "seg.nii.gz", ref, shifted)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "seg.nii.gz"), str(tmp_path / "gt.nii.gz")])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith("error:") and len(message.splitlines()) == 1
    assert "seg.nii.gz" in message and "gt.nii.gz" in message and "--resample-to-reference" in message
    ok = runner.invoke(app, ["evaluate", str(tmp_path / "seg.nii.gz"), str(tmp_path / "gt.nii.gz"),
                             "--resample-to-reference", "--json", "-"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["summary"]["resampled_cases"] == ["gt"]
