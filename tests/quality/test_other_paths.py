"""Every prediction path writes a ``quality`` block: nnU-Net folders, TotalSegmentator and cascades (engines
without the probe) get the label map's raw signals, no predicted Dice, with the issue's key names."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main

runner = CliRunner()


def _check(sidecar_path, labels_path, names):
    """The sidecar's quality block against the label file it describes (``names``: list, or the sidecar's
    ``{"value": name}``)."""
    if isinstance(names, dict):
        names = [names.get(str(v), "") for v in range(max(int(k) for k in names) + 1)]
    quality = json.loads(sidecar_path.read_text())["quality"]
    assert set(quality) == {n for n in names[1:] if n}
    image = nib.load(labels_path)
    labels = np.asarray(image.dataobj)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    foreground = int((labels > 0).sum())
    for value, name in enumerate(names):
        if not value or not name:
            continue
        entry = quality[name]
        assert set(entry) == {"predicted_dice", "flag", "signals"}
        assert entry["predicted_dice"] is None and entry["flag"] is False   # no calibration, no reference
        count = int((labels == value).sum())
        assert entry["signals"]["volume_ml"] == pytest.approx(count * voxel_ml, rel=1e-4, abs=1e-6)
        assert entry["signals"]["components"] >= (1 if count else 0)
        if count:
            assert entry["signals"]["share"] == pytest.approx(count / foreground, abs=1e-4)
    return quality


def test_nnunet_folder_predictions_carry_raw_signals(tmp_path, one_torch_thread):
    from tests.nnunet._synthetic import make_folder, write_scan

    folder = make_folder(tmp_path / "results")
    write_scan(tmp_path / "scans" / "a_0000.nii.gz", seed=1)
    out = tmp_path / "out"
    result = runner.invoke(cli_main.app, ["predict", str(tmp_path / "scans"), "--model", str(folder), "-o", str(out),
                                          "--no-tta", "--stats", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    names = json.loads((out / "a.json").read_text())["labels"]
    quality = _check(out / "a.json", out / "a.nii.gz", names)
    with open(out / "a_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["name"] for r in rows} == set(quality) and all(r["quality_flag"] == "False" for r in rows)


def test_totalsegmentator_predictions_carry_raw_signals(tmp_path, monkeypatch, one_torch_thread):
    from medseg.reports.labels import embedded_label_names
    from tests.totalseg._parts import make_task, write_ct

    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "tsh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    make_task(tmp_path / "tsh", "total_fast")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(30, 24, 20))
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fast"])
    assert result.exit_code == 0, result.output
    seg = tmp_path / "ct_seg.nii.gz"
    embedded = embedded_label_names(seg)
    names = [""] + [embedded[i] for i in range(1, max(embedded) + 1)]
    _check(tmp_path / "ct_seg.json", seg, names)


def test_cascade_predictions_carry_raw_signals(tmp_path, monkeypatch, one_torch_thread):
    from tests.cascade._models import register_stage_models, save_stage_checkpoints
    from tests.cascade.test_predict import RECIPE, _scan

    register_stage_models()
    (tmp_path / "pipelines" / "cascade").mkdir(parents=True)
    (tmp_path / "pipelines" / "cascade" / "thr.toml").write_text(RECIPE)
    save_stage_checkpoints(tmp_path / "runs" / "thr")
    monkeypatch.chdir(tmp_path)
    _scan(tmp_path / "scan.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", "scan.nii.gz", "-o", "out/seg.nii.gz", "--model", "cascade.thr",
                                          "--device", "cpu", "--threads", "1"])
    assert result.exit_code == 0, result.output
    names = json.loads((tmp_path / "out" / "seg.json").read_text())["labels"]
    quality = _check(tmp_path / "out" / "seg.json", tmp_path / "out" / "seg.nii.gz", names)
    assert quality["organ"]["signals"]["volume_ml"] > 0
