"""An official-format STU-Net checkpoint gives the labels of STU-Net's own predictor (nnU-Net v1).

The reference in ``data/stunet_v1/`` was made by ``make_stunet_v1_reference.py`` with STU-Net's repository:
a random-weight width-2 STU-Net saved as ``.model`` + ``.model.pkl`` (the official plans: 'nonCT' z-score,
1.5 mm, pools [2,2,2] x 4 + [1,1,2], patch 32x32x64), two RAS-stored phantoms and v1's labels. The last
pooling stride is anisotropic, so feeding the axes in another order changes the output: the tests check
both that medseg reproduces v1 and that the wrong order would be caught.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.api import predict
from medseg.inference.tta import mirrored
from medseg.io import read_image
from medseg.models import create_model, load_official_stunet
from medseg.transforms.presets import build_preprocessing

REFERENCE = Path(__file__).parent / "data" / "stunet_v1"
SCRIPT = Path(__file__).parent / "make_stunet_v1_reference.py"


def tiny_stunet(folder: Path = REFERENCE, orientation: str | None = None):
    """stunet_s at the reference's width and patch, loaded from the official-format file."""
    model = create_model("stunet_s", width=2, out_channels=6, roi_size=(32, 32, 64))
    load_official_stunet(model, folder / "model" / "fold_0" / "tiny.model")
    if orientation is not None:
        model.card = model.card.replace(orientation=orientation)
    return model


def agreement(model, folder: Path, case: str, *, tta: bool) -> float:
    # nnU-Net v1 crops to the non-zero region; medseg's default for CT cards (the body) places windows elsewhere
    ours = predict(folder / f"{case}_0000.nii.gz", model, tta=tta, device="cpu", postprocess=False, crop="nonzero")
    v1 = np.asarray(nib.load(folder / f"{case}_v1_{'tta' if tta else 'no_tta'}.nii.gz").dataobj)
    ours = ours[0].numpy()
    assert ours.shape == v1.shape
    return float((ours == v1).mean())


def test_one_window_matches_nnunet_v1_exactly_and_a_transposed_input_would_not():
    """One patch, no stitching, no mirroring: network, axis order, z-score and restore are all that count."""
    assert tiny_stunet().card.orientation == "SAR"  # the shipped card, not an override
    assert agreement(tiny_stunet(), REFERENCE, "one", tta=False) == 1.0
    assert agreement(tiny_stunet(orientation="RAS"), REFERENCE, "one", tta=False) < 0.8  # (R, A, S): wrong


def test_mirrored_passes_match_nnunet_v1_when_averaged_as_v1_does():
    """v1 averages the softmax of the 8 mirrored passes; the same passes through medseg's TTA reproduce it."""
    model = tiny_stunet().eval()
    image = read_image(REFERENCE / "one_0000.nii.gz")
    x = build_preprocessing(model.card)({"image": image})["image"].as_tensor()[None]
    assert tuple(x.shape[2:]) == (32, 32, 64)  # (S, A, R), one patch
    with torch.inference_mode():
        probs = mirrored(lambda t: torch.softmax(model(t), 1), x, (0, 1, 2))[0]
    labels = probs.argmax(0).permute(2, 1, 0).numpy()  # (S, A, R) -> the file's (i, j, k) = (R, A, S)
    v1 = np.asarray(nib.load(REFERENCE / "one_v1_tta.nii.gz").dataobj)
    assert (labels == v1).mean() >= 0.9999  # measured: 1 voxel in 65536 (a float tie)


def test_several_windows_follow_nnunet_v1_up_to_how_windows_are_summed():
    """2 x 2 x 2 windows. Measured: 0.989 (transposed: 0.469). The rest is the accumulation rule: v1 sums
    Gaussian-weighted softmax, medseg (like nnU-Net v2) Gaussian-weighted logits; with softmax sums the same
    network and windows give 1.0 (and with the engine's former Gaussian centred at (n - 1) / 2: 0.895)."""
    assert agreement(tiny_stunet(), REFERENCE, "multi", tta=False) > 0.98
    assert agreement(tiny_stunet(orientation="RAS"), REFERENCE, "multi", tta=False) < 0.6


def _peer() -> tuple[str, str]:
    python, repo = os.environ.get("MEDSEG_PEER_NNUNET_V1_PYTHON"), os.environ.get("MEDSEG_PEER_STUNET_REPO")
    if not python or not repo:
        pytest.skip("set MEDSEG_PEER_NNUNET_V1_PYTHON (a python with `pip install nnunet`) and "
                    "MEDSEG_PEER_STUNET_REPO (a uni-medical/STU-Net checkout) to run STU-Net's predictor")
    return python, repo


@pytest.mark.peer
def test_live_against_stunets_own_predictor(tmp_path):
    """Regenerate checkpoint, scans and v1 labels with the original code now, then compare as above."""
    python, repo = _peer()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[2])}
    done = subprocess.run([python, str(SCRIPT), "--stunet-repo", repo, "--out", str(tmp_path)], env=env,
                          check=False, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert agreement(tiny_stunet(tmp_path), tmp_path, "one", tta=False) == 1.0
    assert agreement(tiny_stunet(tmp_path), tmp_path, "multi", tta=False) > 0.98
    assert agreement(tiny_stunet(tmp_path), tmp_path, "multi", tta=True) > 0.9  # v1 averages softmax, medseg logits
    committed = np.asarray(nib.load(REFERENCE / "multi_v1_no_tta.nii.gz").dataobj)
    fresh = np.asarray(nib.load(tmp_path / "multi_v1_no_tta.nii.gz").dataobj)
    assert np.array_equal(committed, fresh), "the committed reference no longer matches the original predictor"

