"""`medseg info` through typer's CliRunner (and once through `python -m medseg`): output and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.core.errors import MedsegError
from tests.conftest import ROOT, SAMPLE, SAMPLE_LABEL
from tests.io.helpers import make_bad_inputs, nan_volume, write_series

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # rich wraps log lines at the terminal width
KEYS = {"shape", "spacing", "affine", "orientation", "dtype", "min", "max"}


def _app():
    from medseg.cli.main import app

    return app


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("path", [SAMPLE, SAMPLE_LABEL])
def test_info_json_has_the_documented_keys_and_matches_nibabel(path):
    result = runner.invoke(_app(), ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert KEYS <= set(summary)
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    assert summary["shape"] == list(img.shape)
    np.testing.assert_allclose(summary["affine"], img.affine)
    np.testing.assert_allclose(summary["spacing"], img.header.get_zooms(), atol=1e-6)
    assert summary["orientation"] == "".join(nib.aff2axcodes(img.affine))
    assert summary["dtype"] == str(img.get_data_dtype())
    assert (summary["min"], summary["max"]) == (data.min(), data.max())
    assert ("num_labels" in summary) == (path == SAMPLE_LABEL)


def test_info_table_and_dicom_series_selection(tmp_path, rng):
    result = runner.invoke(_app(), ["info", str(SAMPLE_LABEL)], env=WIDE)
    assert result.exit_code == 0
    assert "orientation" in result.stdout and "RAS" in result.stdout and "[1, 2]" in result.stdout
    folder = tmp_path / "two"
    folder.mkdir()
    for index in (1, 2):
        write_series(tmp_path / f"s{index}", rng, shape=(4, 4, 2 + index))
        for file in (tmp_path / f"s{index}").iterdir():
            file.rename(folder / f"{index}_{file.name}")
    result = runner.invoke(_app(), ["info", str(folder)])
    assert result.exit_code == 2 and "--series" in result.stderr
    from medseg.io import list_dicom_series

    uid = next(s.uid for s in list_dicom_series(folder) if s.files == 4)
    result = runner.invoke(_app(), ["info", str(folder), "--series", uid, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shape"] == [4, 4, 4]


def test_info_on_4d_reports_channels_and_frame_picks_one(tmp_path):
    nib.save(nib.Nifti1Image(np.arange(4 * 5 * 6 * 3).reshape(4, 5, 6, 3).astype(np.int16), np.eye(4)),
             tmp_path / "four.nii.gz")
    whole = json.loads(runner.invoke(_app(), ["info", str(tmp_path / "four.nii.gz"), "--json"]).stdout)
    assert whole["channels"] == 3 and whole["shape"] == [4, 5, 6]
    result = runner.invoke(_app(), ["info", str(tmp_path / "four.nii.gz"), "--json", "--frame", "1"])
    assert json.loads(result.stdout)["channels"] == 1


def test_nan_voxels_are_a_counted_warning_and_json_stays_clean(tmp_path):
    path = nan_volume(tmp_path, count=7)
    result = runner.invoke(_app(), ["info", str(path), "--json"], env=WIDE)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["non_finite"] == 7
    assert "7 NaN/inf voxels" in result.stderr


@pytest.mark.parametrize("case", ["missing", "unknown extension", "truncated nii.gz", "truncated nii",
                                  "text renamed nii", "png renamed nii", "text renamed nrrd",
                                  "singular affine", "empty folder", "folder without DICOM", "several series"])
def test_bad_input_is_one_line_exit_2_no_traceback(bad_inputs, case):
    path, words = bad_inputs[case]
    result = runner.invoke(_app(), ["info", str(path)])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(path) in lines[0] and words in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""


def test_debug_lets_the_error_and_its_traceback_through(bad_inputs):
    result = runner.invoke(_app(), ["--debug", "info", str(bad_inputs["truncated nii.gz"][0])])
    assert result.exit_code != 0
    assert isinstance(result.exception, MedsegError)


def test_the_console_entry_point_prints_one_line_and_exits_2_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    missing = tmp_path / "missing.nii.gz"
    done = subprocess.run([sys.executable, "-m", "medseg", "info", str(missing)], check=False, capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {missing}: file not found (check the path and the working directory)"
    done = subprocess.run([sys.executable, "-m", "medseg", "info", "--bogus"], check=False, capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "No such option" in done.stderr and "Traceback" not in done.stderr
