"""The 2D data path through the existing commands: `medseg predict image.png` with a 2D model (the image
larger than the model's window, so the 2D sliding window stitches it) and `medseg evaluate` on 2D masks
(distances in pixels for PNG, in the file's spacing for TIFF)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from safetensors.torch import save
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.core.card import Pretrained
from medseg.io import read_image, write_image
from medseg.models import get_entry, register_model
from tests.inference._models import ThresholdNet, expected, threshold_card

runner = CliRunner()
NAME, TAG, FILE = "medseg_test_threshold_2d", "fixed", "medseg_test_threshold_2d.safetensors"


def _weights() -> bytes:
    return save(ThresholdNet(2).state_dict())


@pytest.fixture
def model_args(tmp_path):
    try:
        get_entry(NAME)
    except Exception:  # noqa: BLE001 - not registered yet in this process
        card = threshold_card(NAME, spatial_dims=2, pretrained=(Pretrained(
            tag=TAG, file=FILE, sha256=hashlib.sha256(_weights()).hexdigest(), license="CC0"),))
        register_model(card)(lambda card, **kw: ThresholdNet(2))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / FILE).write_bytes(_weights())
    return ["--model", f"{NAME}.{TAG}", "--weights-dir", str(weights), "--device", "cpu", "--threads", "1"]


def test_predict_png_larger_than_the_window(tmp_path, rng, model_args):
    picture = rng.integers(0, 3, size=(1, 45, 37)).astype(np.uint8)   # 16x16 window: many windows stitched
    write_image(picture, tmp_path / "photo.png")
    result = runner.invoke(cli_main.app, ["predict", str(tmp_path / "photo.png"), "-o", str(tmp_path / "seg.png"),
                                          *model_args])
    assert result.exit_code == 0, result.output
    seg = read_image(tmp_path / "seg.png")
    assert tuple(seg.shape) == (1, 45, 37)
    np.testing.assert_array_equal(seg[0].numpy(), expected(picture[0]))


def _squares(shift: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((1, 30, 24), np.uint8)
    ref[0, 5:15, 5:15] = 1
    pred = np.zeros_like(ref)
    pred[0, 5 + shift:15 + shift, 5:15] = 1
    return pred, ref


@pytest.mark.parametrize(("ext", "spacing"), [("png", 1.0), ("tif", 0.5)])
def test_evaluate_2d_masks(tmp_path, ext, spacing):
    pred, ref = _squares(shift=3)
    affine = np.diag([spacing, spacing, 1.0, 1.0])
    write_image(pred, tmp_path / f"pred.{ext}", affine=affine)
    write_image(ref, tmp_path / f"ref.{ext}", affine=affine)
    result = runner.invoke(cli_main.app, ["evaluate", str(tmp_path / f"pred.{ext}"), str(tmp_path / f"ref.{ext}"),
                                          "--json", "-", "-j", "1"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["cases"][0]
    assert row["label"] == 1
    assert row["dice"] == pytest.approx(2 * 7 * 10 / 200)
    assert row["hd"] == pytest.approx(3 * spacing, rel=1e-4)   # PNG: pixels; TIFF: its own spacing


def test_evaluate_2d_masks_with_a_given_spacing(tmp_path):
    """PNG stores no pixel size: --spacing turns distances and areas into mm; a wrong length is one line."""
    pred, ref = _squares(shift=3)
    write_image(pred, tmp_path / "pred.png")
    write_image(ref, tmp_path / "ref.png")
    args = ["evaluate", str(tmp_path / "pred.png"), str(tmp_path / "ref.png"), "--json", "-", "-j", "1"]
    result = runner.invoke(cli_main.app, [*args, "--spacing", "0.2,0.5"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    row = out["cases"][0]
    assert row["hd"] == pytest.approx(3 * 0.2, rel=1e-4)            # the shift is along the first axis
    assert row["dice"] == pytest.approx(2 * 7 * 10 / 200)            # overlap does not depend on spacing
    assert out["summary"]["spacing_mm"] == [0.2, 0.5]
    bad = runner.invoke(cli_main.app, [*args, "--spacing", "0.2,0.5,1"])
    assert bad.exit_code == 2 and "2D" in bad.output and "Traceback" not in bad.output
    word = runner.invoke(cli_main.app, [*args, "--spacing", "thin"])
    assert word.exit_code == 2 and "--spacing" in word.output
