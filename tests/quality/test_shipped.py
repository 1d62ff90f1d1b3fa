"""The shipped model's calibrated estimate: in the card, lower for a degraded scan, every structure flagged
out of domain (a CT and a too-small MR crop from the TotalSegmentator examples, run with --force)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from typer.testing import CliRunner

from medseg.cli.main import app
from medseg.io import read_image, write_image
from medseg.models import get_card
from tests.conftest import SAMPLE, SAMPLE_LABEL


@pytest.fixture(scope="module")
def predictor():
    from medseg import api

    return api.build_predictor(device="cpu", backend="torch", force=True, threads=1)


def test_the_shipped_card_carries_a_monotone_calibration_and_the_training_reference():
    quality = get_card("stunet_t.hippocampus").quality
    knots = quality["calibration"]["knots"]
    assert np.all(np.diff(knots["dice"]) >= 0) and np.all(np.diff(knots["score"]) > 0)
    assert set(quality["reference"]) == {"anterior", "posterior"}


def test_a_degraded_scan_gets_a_lower_predicted_dice_than_the_clean_one(predictor):
    from medseg.quality.degrade import blur

    image = read_image(SAMPLE)
    reference = read_image(SAMPLE_LABEL).as_tensor()[0].numpy().round()
    clean = predictor.predict(image).quality
    blurred = blur(2.0)(image.as_tensor()[0].numpy().astype(np.float64), 0)
    prediction = predictor.predict(MetaTensor(torch.from_numpy(blurred.astype(np.float32))[None], affine=image.affine))
    labels = prediction.labels[0].numpy()
    for value, name in ((1, "anterior"), (2, "posterior")):
        actual = 2 * ((labels == value) & (reference == value)).sum() / ((labels == value).sum() + (reference == value).sum())
        assert actual < 0.8                                   # the blur really hurts this scan ...
        assert 0.0 <= prediction.quality[name]["predicted_dice"] < clean[name]["predicted_dice"] <= 1.0
        assert prediction.quality[name]["flag"] and not clean[name]["flag"]   # ... and the estimate says so


@pytest.mark.parametrize("scan, box, reason", [
    ("example_ct_sm.nii.gz", (slice(0, 20), slice(40, 60), slice(8, 22)), "modality"),       # CT + air, 60 mm
    ("example_mr_sm.nii.gz", (slice(50, 60), slice(40, 50), slice(8, 13)), "field_of_view"),  # MR, 30 mm
])
def test_out_of_domain_scans_are_flagged_in_sidecar_stats_and_table(shared_data, tmp_path, scan, box, reason):
    source = read_image(shared_data / "totalsegmentator_example" / scan)
    crop = source.as_tensor()[0].numpy()[box]
    affine = source.affine.numpy().copy()
    affine[:3, 3] = affine[:3, :3] @ np.array([b.start for b in box]) + affine[:3, 3]
    write_image(crop[None], tmp_path / "scan.nii.gz", affine=affine)
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "scan.nii.gz"), "-o", str(tmp_path / "out"),
                                      "--force", "--stats", "--backend", "torch", "--device", "cpu", "--no-tta",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    quality = json.loads((tmp_path / "out" / "scan.json").read_text())["quality"]
    assert set(quality) == {"anterior", "posterior"}
    for entry in quality.values():
        assert entry["flag"] and reason in entry["signals"]["out_of_domain"]
        assert entry["predicted_dice"] is not None and entry["predicted_dice"] <= 0.2
    header = (tmp_path / "out" / "scan_stats.csv").read_text().splitlines()[0]
    assert "predicted_dice" in header and "quality_flag" in header
    assert "flagged" in result.output
