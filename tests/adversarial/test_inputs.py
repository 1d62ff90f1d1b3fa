"""Hostile and out-of-domain inputs (issue 16, items 4, 6, 7, 8): truncated and complex files, RGB NIfTI,
outlier voxels, blank images, a CT or an abdomen given to the MR hippocampus model, --max-voxels.

Refusals exit 2 with one line naming the file, leave the inputs byte-identical and write nothing."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medseg import api
from medseg.core.card import Intensity
from medseg.core.errors import MedsegError
from medseg.inference import preflight
from medseg.io import read_image
from tests.adversarial._io_probe import (
    assert_refused,
    invoke,
    nifti_header_bytes,
    save_nifti,
    snapshot,
)
from tests.conftest import SAMPLE

FAST = ("--fast", "--backend", "torch", "--device", "cpu")


@pytest.fixture(scope="module")
def predictor():
    return api.build_predictor("stunet_t.hippocampus", device="cpu", tta=False)


def _mean_dice(a: np.ndarray, b: np.ndarray) -> float:
    scores = []
    for label in (1, 2):
        x, y = a == label, b == label
        scores.append(2.0 * np.sum(x & y) / max(1, np.sum(x) + np.sum(y)))
    return float(np.mean(scores))


def _refused_without_output(tmp_path, args, name, *words):
    before = snapshot(tmp_path)
    result = invoke(*args)
    assert_refused(result, name, *words)
    assert snapshot(tmp_path) == before


def test_info_refuses_a_truncated_nifti(tmp_path):
    path = tmp_path / "cut.nii"
    path.write_bytes(nifti_header_bytes((64, 64, 64)) + b"\0" * 1000)
    _refused_without_output(tmp_path, ["info", path], path, "64x64x64 float32", "truncated")


def test_info_header_only_reads_no_voxels(tmp_path):
    path = tmp_path / "claims.nii"   # a header whose voxels are missing: the header alone is still described
    path.write_bytes(nifti_header_bytes((64, 64, 64)))
    result = invoke("info", path, "--header-only", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["shape"] == [64, 64, 64] and summary["bytes_claimed"] == 64 ** 3 * 4 and "min" not in summary


@pytest.mark.parametrize("command", ["info", "predict"])
def test_complex_images_are_refused(tmp_path, command):
    nii = tmp_path / "phase.nii"
    nii.write_bytes(nifti_header_bytes((8, 8, 8), np.complex64) + b"\0" * (8 ** 3 * 8))
    nrrd = tmp_path / "phase.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((6, 6, 6), np.complex64)), str(nrrd))
    for path in (nii, nrrd):
        extra = ["-o", tmp_path / "out/", *FAST] if command == "predict" else []
        _refused_without_output(tmp_path, [command, path, *extra], path, "complex")


def test_rgb_nifti_becomes_colour_channels(tmp_path):
    rgb = np.zeros((40, 50, 40), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"], rgb["G"], rgb["B"] = 200, 100, 50
    path = tmp_path / "colour.nii.gz"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(path))
    result = invoke("info", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["channels"] == 3
    image = read_image(path, allow_multichannel=False)
    assert tuple(image.shape) == (3, 40, 50, 40) and image[0].max() == 200 and image[2].min() == 50
    before = snapshot(tmp_path)
    result = invoke("predict", path, "-o", tmp_path / "out/", *FAST)   # a 1-channel model: grey, with a warning
    assert result.exit_code == 0, result.output
    assert "converted a 3-channel colour image to greyscale" in result.stderr
    assert all(snapshot(tmp_path)[k] == v for k, v in before.items())


def test_an_outlier_voxel_does_not_empty_the_segmentation(predictor):
    image = read_image(SAMPLE).float()
    clean = predictor.predict(image).labels[0].numpy()
    hostile = image.clone()
    hostile[0, 17, 25, 17] = 1e5        # the scan's maximum is 139
    result = predictor.predict(hostile).labels[0].numpy()
    assert (clean > 0).sum() > 500
    assert _mean_dice(result, clean) >= 0.95


def test_models_without_clipping_get_an_outlier_warning(predictor):
    image = read_image(SAMPLE).float()
    image[0, 17, 25, 17] = 1e5
    plain = predictor.card.replace(intensity=Intensity("zscore"))
    assert any("outlier" in w for w in preflight.outlier_warning(image, plain, "scan.nii.gz"))
    assert preflight.outlier_warning(image, predictor.card, "scan.nii.gz") == []   # the card clips
    assert preflight.outlier_warning(read_image(SAMPLE), plain, "scan.nii.gz") == []


@pytest.mark.parametrize("fill, reason", [(0.0, "all zero"), (7.0, "constant"), (np.nan, "no finite voxel")])
def test_blank_images_give_a_warning_and_an_empty_label_map(predictor, fill, reason):
    image = read_image(SAMPLE).float()
    image[:] = fill
    prediction = predictor.predict(image, path="blank.nii.gz")
    assert prediction.labels.shape == image.shape and int(prediction.labels.max()) == 0
    assert any(reason in w and "empty" in w for w in prediction.warnings)


def test_all_nan_scan_through_the_cli_records_the_warning(tmp_path):
    path = save_nifti(tmp_path / "nan.nii.gz", np.full((36, 50, 36), np.nan, np.float32))
    result = invoke("predict", path, "-o", tmp_path / "out/", *FAST)
    assert result.exit_code == 0, result.output
    sidecar = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert any("nothing to segment" in w for w in sidecar["warnings"])
    assert np.asanyarray(nib.load(str(tmp_path / "out" / "nan.nii.gz")).dataobj).max() == 0


def _small_ct(rng) -> np.ndarray:
    ct = np.full((40, 50, 40), -1000.0, np.float32)                  # air
    ct[5:35, 5:45, 5:35] = 40 + rng.normal(0, 10, (30, 40, 30))      # soft tissue in HU
    return ct


def test_a_ct_given_to_the_mr_model_is_refused(predictor, rng):
    ct = torch.from_numpy(_small_ct(rng))[None]
    with pytest.raises(MedsegError, match="looks like CT"):
        predictor.predict(ct, path="ct.nii.gz")


def test_force_runs_a_refused_ct_with_a_warning(rng):
    forced = api.build_predictor("stunet_t.hippocampus", device="cpu", tta=False, force=True)
    prediction = forced.predict(torch.from_numpy(_small_ct(rng))[None], path="ct.nii.gz")
    assert any("looks like CT" in w and "--force" in w for w in prediction.warnings)


def test_an_abdomen_sized_scan_is_refused_from_its_header(tmp_path, rng):
    path = save_nifti(tmp_path / "abdomen_mr.nii.gz", rng.uniform(0, 300, (40, 40, 40)).astype(np.float32),
                      spacing=(10.0, 10.0, 10.0))
    _refused_without_output(tmp_path, ["predict", path, "-o", tmp_path / "out/", *FAST], path,
                            "spans 400 mm", "40-60 mm")


def test_a_mild_field_of_view_mismatch_is_a_warning_in_terminal_and_sidecar(tmp_path):
    data = np.asanyarray(nib.load(str(SAMPLE)).dataobj)[1:34, :, 1:34]
    path = save_nifti(tmp_path / "wide.nii.gz", data, spacing=(1.2, 1.2, 1.2))   # 40x61x40 mm: 2 windows
    result = invoke("predict", path, "-o", tmp_path / "out/", *FAST)
    assert result.exit_code == 0
    assert "spans 61 mm" in result.stderr
    sidecar = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert any("spans 61 mm" in w and "results may be wrong" in w for w in sidecar["warnings"])


def test_max_voxels_refuses_with_the_numbers(tmp_path):
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(SAMPLE.read_bytes())
    _refused_without_output(tmp_path, ["predict", path, "-o", tmp_path / "out/", *FAST, "--max-voxels", "1000"],
                            path, "35x51x35 voxels become 35x51x35", "--max-voxels")


def test_long_jobs_get_one_time_notice(monkeypatch):
    clock = iter([0.0, 5.0, 15.0, 25.0])    # created; engine start (0 windows); after 2 windows; after 4
    monkeypatch.setattr(preflight.time, "perf_counter", lambda: next(clock))
    notices, seen = [], []
    monkeypatch.setattr(preflight.logger, "warning", lambda message, *args: notices.append(message % args))
    update = preflight.time_notice(lambda done, total: seen.append(done), "big.nii.gz", passes=8, fast_windows=48)
    update(0, 100)
    update(2, 100)
    update(4, 100)
    assert notices == ["big.nii.gz: 100 windows x 8 passes, ~8 min on this machine (0.6 s per window pass); "
                       "--no-tta ~62 s, --fast ~30 s"]
    assert seen == [0, 2, 4]


def test_short_jobs_get_no_time_notice(monkeypatch):
    clock = iter([0.0, 0.0, 1.0, 2.0])
    monkeypatch.setattr(preflight.time, "perf_counter", lambda: next(clock))
    notices = []
    monkeypatch.setattr(preflight.logger, "warning", lambda message, *args: notices.append(message % args))
    update = preflight.time_notice(None, "small.nii.gz", passes=8)
    for done in (0, 2, 4):
        update(done, 10)
    assert notices == []


@pytest.mark.parametrize("name", ["example_ct.nii.gz", "example_mr_sm.nii.gz"])
def test_totalsegmentator_scans_are_refused_by_the_hippocampus_model(shared_data, tmp_path, name):
    path = tmp_path / name
    path.write_bytes((shared_data / "totalsegmentator_example" / name).read_bytes())
    _refused_without_output(tmp_path, ["predict", path, "-o", tmp_path / "out/", *FAST], path,
                            "stunet_t was made for scans 40-60 mm across")
