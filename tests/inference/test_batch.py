import json

import numpy as np

from medseg.inference.batch import OutputOptions, run_batch
from medseg.inference.cases import plan_cases
from medseg.inference.predictor import PredictOptions, Predictor
from medseg.io import read_image, write_image
from tests.conftest import random_oblique_affine
from tests.inference._models import expected, noise_volume, threshold_model


def _scans(folder, rng, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    volumes = {}
    for i in range(n):
        volumes[f"case{i}"] = noise_volume((12 + i, 14, 9), rng)
        write_image(volumes[f"case{i}"][None], folder / f"case{i}.nii.gz", affine=random_oblique_affine(rng))
    return volumes


def test_folder_with_a_corrupt_scan_finishes_the_others(tmp_path, rng):
    volumes = _scans(tmp_path / "in", rng)
    (tmp_path / "in" / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    cases = plan_cases([tmp_path / "in"], tmp_path / "out")
    events = []
    summary = run_batch(Predictor(threshold_model()), cases, OutputOptions(stats=True), progress=events.append)
    status = {r.case.name: r.status for r in summary.results}
    assert status == {"broken": "failed", "case0": "done", "case1": "done", "case2": "done"}
    assert summary.exit_code == 1 and "broken.nii.gz" in summary.results[0].message
    for name, volume in volumes.items():
        np.testing.assert_array_equal(read_image(tmp_path / "out" / f"{name}.nii.gz")[0].numpy(), expected(volume))
    assert not (tmp_path / "out" / "broken.nii.gz").exists() and not (tmp_path / "out" / "broken.json").exists()
    assert [e.kind for e in events if e.case == "case1"][0] == "case_start"
    assert any(e.kind == "windows" and e.done == e.of for e in events)


def test_sidecar_records_model_parameters_and_outputs(tmp_path, rng):
    _scans(tmp_path / "in", rng, n=1)
    cases = plan_cases([tmp_path / "in"], tmp_path / "out")
    predictor = Predictor(threshold_model(), options=PredictOptions(probabilities=True, overlap=0.25))
    run_batch(predictor, cases, OutputOptions(stats=True))
    record = json.loads((tmp_path / "out" / "case0.json").read_text())
    assert record["status"] == "complete" and record["model"]["name"] == "threshold"
    assert record["parameters"]["overlap"] == 0.25 and record["parameters"]["stats"] is True
    assert set(record["outputs"]) == {"labels", "stats_csv", "stats_json", "probabilities"}
    assert len(record["input"]["sha256"]) == 64 and record["labels"]["1"] == "low"
    assert record["device"].startswith("cpu") and record["timings_s"]["inference_s"] >= 0
    probs = read_image(tmp_path / "out" / "case0_probabilities.nii.gz", allow_multichannel=True)
    assert probs.shape[0] == 3 and probs.meta["original_dtype"] == "uint8"
    stats = json.loads((tmp_path / "out" / "case0_stats.json").read_text())
    assert [s["name"] for s in stats["structures"]] == ["low", "high"]


def test_resume_skips_complete_cases_and_redoes_incomplete_ones(tmp_path, rng):
    _scans(tmp_path / "in", rng)
    cases = plan_cases([tmp_path / "in"], tmp_path / "out")
    predictor = Predictor(threshold_model())
    assert run_batch(predictor, cases, OutputOptions()).count("done") == 3
    (tmp_path / "out" / "case1.json").unlink()           # as if killed before the sidecar
    before = (tmp_path / "out" / "case0.nii.gz").stat().st_mtime_ns
    summary = run_batch(predictor, cases, OutputOptions(), resume=True)
    assert [r.status for r in summary.results] == ["skipped", "done", "skipped"]
    assert (tmp_path / "out" / "case0.nii.gz").stat().st_mtime_ns == before
    changed = run_batch(predictor, cases, OutputOptions(stats=True), resume=True)  # new parameters: redo
    assert changed.count("done") == 3


def test_per_class_outputs_and_no_prefetch(tmp_path, rng):
    volumes = _scans(tmp_path / "in", rng, n=2)
    cases = plan_cases([tmp_path / "in"], tmp_path / "out", "per-class")
    summary = run_batch(Predictor(threshold_model()), cases, OutputOptions(output_type="per-class"), prefetch=False)
    assert summary.exit_code == 0
    high = read_image(tmp_path / "out" / "case1" / "high.nii.gz")[0].numpy()
    np.testing.assert_array_equal(high, (expected(volumes["case1"]) == 2).astype(np.uint8))
    assert json.loads((tmp_path / "out" / "case1.json").read_text())["outputs"]["class:high"]["bytes"] > 0


def test_2d_pictures_keep_a_lossless_picture_format(tmp_path, rng):
    from PIL import Image

    from medseg.core.card import Intensity

    (tmp_path / "in").mkdir()
    picture = rng.integers(0, 256, (30, 40)).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "in" / "xray.jpg", quality=100)
    model = threshold_model(spatial_dims=2, intensity=Intensity("minmax"))
    cases = plan_cases([tmp_path / "in"], tmp_path / "out")
    predictor = Predictor(model, options=PredictOptions(probabilities=True))
    assert run_batch(predictor, cases, OutputOptions(stats=True)).exit_code == 0
    labels = read_image(tmp_path / "out" / "xray.png")
    scan = read_image(tmp_path / "in" / "xray.jpg")
    assert labels.shape == scan.shape and np.allclose(labels.affine.numpy(), scan.affine.numpy())
    probs = read_image(tmp_path / "out" / "xray_probabilities.nii.gz", allow_multichannel=True)
    assert probs.shape == (3, *scan.shape[1:], 1)
