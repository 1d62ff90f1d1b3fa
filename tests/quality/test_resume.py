"""``--resume`` with another ``--flag-below`` re-decides the flags of finished cases (sidecar, stats, table)
without predicting them again, and leaves them complete for the next ``--resume``."""
from __future__ import annotations

import csv
import json
import shutil

from typer.testing import CliRunner

from medseg.cli.main import app
from medseg.quality.resume import reflag
from tests.conftest import SAMPLE


def test_reflag_redecides_only_structures_with_a_predicted_dice():
    quality = {"a": {"predicted_dice": 0.7, "flag": True, "signals": {}},
               "b": {"predicted_dice": None, "flag": True, "signals": {"out_of_domain": ["modality"]}}}
    out = reflag(quality, 0.5)
    assert out["a"]["flag"] is False and out["b"]["flag"] is True
    assert quality["a"]["flag"] is True   # the input is not changed


def _flags(folder):
    sidecar = json.loads((folder / "scan.json").read_text())
    with open(folder / "scan_stats.csv", newline="") as handle:
        csv_flags = {row["name"]: row["quality_flag"] for row in csv.DictReader(handle)}
    return sidecar, {k: v["flag"] for k, v in sidecar["quality"].items()}, csv_flags


def test_resume_honours_a_new_flag_below_and_the_case_stays_complete(tmp_path):
    shutil.copy(SAMPLE, tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "scan.nii.gz"), "-o", str(out), "--stats", "--backend", "torch",
            "--device", "cpu", "--no-tta", "--threads", "1"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--flag-below", "0.0"])
    assert first.exit_code == 0, first.output
    before, flags, csv_flags = _flags(out)
    assert not any(flags.values()) and set(csv_flags.values()) == {"False"}

    second = runner.invoke(app, [*args, "--resume", "--flag-below", "1.0"])
    assert second.exit_code == 0, second.output
    after, flags, csv_flags = _flags(out)
    assert after["created"] == before["created"]            # not predicted again
    assert all(flags.values()) and set(csv_flags.values()) == {"True"}
    assert "flagged" in second.output and "anterior" in second.output

    third = runner.invoke(app, [*args, "--resume", "--flag-below", "1.0"])   # still complete: skipped again
    assert third.exit_code == 0, third.output
    assert _flags(out)[0]["created"] == before["created"]
