"""`medseg convert` through typer's CliRunner: formats, DICOM, --series/--frame, failures."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import medseg.io.writers
from medseg.io import list_dicom_series, read_image, write_image
from tests.conftest import SAMPLE, random_oblique_affine
from tests.io.helpers import make_bad_inputs, volume, write_series

runner = CliRunner()


def _app():
    from medseg.cli.main import app

    return app


def _convert(*args):
    return runner.invoke(_app(), ["convert", *map(str, args)])


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_help_has_examples():
    result = runner.invoke(_app(), ["convert", "--help"])
    assert result.exit_code == 0 and "Examples" in result.stdout and "medseg convert" in result.stdout


@pytest.mark.parametrize("target", ["scan.nrrd", "scan.mha", "scan.nhdr", "scan.mhd", "scan.nii", "dicom_out/"])
def test_convert_keeps_array_dtype_and_geometry(tmp_path, rng, target):
    source = tmp_path / "scan.nii.gz"
    data = volume(rng, "uint16")
    affine = random_oblique_affine(rng)
    write_image(data, source, affine=affine)
    result = _convert(source, tmp_path / target)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "uint16" in result.stdout
    image = read_image(tmp_path / target)
    np.testing.assert_array_equal(image.numpy(), data)
    np.testing.assert_allclose(image.affine.numpy(), affine, atol=1e-5)
    assert image.meta["original_dtype"] == "uint16"


def test_dicom_folder_to_nifti_with_series_choice(tmp_path, rng):
    folder = tmp_path / "mixed"
    folder.mkdir()
    arrays = {}
    for index in (1, 2):
        arrays[index] = write_series(tmp_path / f"s{index}", rng)
        arrays[list_dicom_series(tmp_path / f"s{index}")[0].uid] = arrays.pop(index)
        for file in (tmp_path / f"s{index}").iterdir():
            file.rename(folder / f"{index}_{file.name}")
    result = _convert(folder, tmp_path / "out.nii.gz")
    assert result.exit_code == 2 and "--series" in result.stderr
    assert not (tmp_path / "out.nii.gz").exists()
    for uid, data in arrays.items():
        result = _convert(folder, tmp_path / "out.nii.gz", "--series", uid)
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(read_image(tmp_path / "out.nii.gz").numpy(), data)


def test_4d_needs_frame_for_dicom_and_frame_picks_one(bad_inputs, tmp_path):
    four_d = bad_inputs["4D volume"][0]
    result = _convert(four_d, tmp_path / "dicom_out")
    assert result.exit_code == 2 and "--frame" in result.stderr
    assert not (tmp_path / "dicom_out").exists()
    result = _convert(four_d, tmp_path / "dicom_out", "--frame", "2")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "dicom_out").shape == (1, 4, 4, 4)
    result = _convert(four_d, tmp_path / "all_frames.mha")  # formats that hold channels keep them all
    assert result.exit_code == 0 and read_image(tmp_path / "all_frames.mha", allow_multichannel=True).shape[0] == 3


@pytest.mark.parametrize(("target", "words"), [("out.jpg", "does not write .jpg"),
                                               ("out.png", "3D image"), ("out.xyz", "unknown image extension")])
def test_unwritable_targets_fail_cleanly(tmp_path, target, words):
    result = _convert(SAMPLE, tmp_path / target)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0] and target in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["missing", "truncated nii.gz", "text renamed nii", "several series"])
def test_bad_sources_fail_with_one_line_and_write_nothing(bad_inputs, tmp_path, case):
    path, words = bad_inputs[case]
    result = _convert(path, tmp_path / "out.nrrd")
    assert result.exit_code == 2
    assert [ln for ln in result.stderr.splitlines() if ln.strip()] == [result.stderr.strip()]
    assert words in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["out.mha", "out.mhd", "out_dicom"])
def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, target):
    def broken(*args, **kwargs):
        raise RuntimeError("disk quota exceeded")

    monkeypatch.setattr(medseg.io.writers, "_execute_itk", broken)
    monkeypatch.setattr(medseg.io.dicom, "write_dicom_series", broken)
    result = _convert(SAMPLE, tmp_path / target)
    assert result.exit_code == 2 and "could not be written" in result.stderr
    assert list(tmp_path.iterdir()) == []
