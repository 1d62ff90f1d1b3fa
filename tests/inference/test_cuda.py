"""GPU behaviour (skipped without CUDA): AMP + channels-last + GPU stitching, and the OOM ladder for real."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.inference import stitcher
from medseg.inference.predictor import PredictOptions, Predictor
from tests.conftest import random_oblique_affine
from tests.inference._models import expected, noise_volume, threshold_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _image(rng, shape=(70, 45, 38)):
    volume = noise_volume(shape, rng)
    return volume, MetaTensor(torch.from_numpy(volume)[None], affine=torch.as_tensor(random_oblique_affine(rng)))


def test_gpu_with_amp_and_tta_is_voxel_exact(rng):
    volume, image = _image(rng)
    prediction = Predictor(threshold_model(), options=PredictOptions(device="cuda")).predict(image)
    assert prediction.settings["tta"] is True and prediction.settings["amp"] is True
    assert "stitch on cuda" in prediction.settings["placement"]
    np.testing.assert_array_equal(prediction.labels[0].numpy(), expected(volume))


def test_out_of_memory_falls_back_to_cpu_stitching(rng, monkeypatch):
    volume, image = _image(rng)
    original = stitcher.CellStitcher.__init__

    def gpu_stitching_fails(self, grid, channels, activation, *, accum_dtype, device, probabilities=False):
        if torch.device(device).type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        original(self, grid, channels, activation, accum_dtype=accum_dtype, device=device,
                 probabilities=probabilities)

    monkeypatch.setattr(stitcher.CellStitcher, "__init__", gpu_stitching_fails)
    prediction = Predictor(threshold_model(), options=PredictOptions(device="cuda")).predict(image)
    assert prediction.settings["placement"] == "compute on cuda:0, stitch on cpu"
    assert any("out of memory" in w for w in prediction.warnings)
    np.testing.assert_array_equal(prediction.labels[0].numpy(), expected(volume))
