import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.core.errors import MedsegError
from medseg.inference.postprocess import PostprocessSpec
from medseg.inference.predictor import PredictOptions, Predictor
from tests.conftest import random_oblique_affine
from tests.inference._models import (
    expected,
    noise_volume,
    smooth_volume,
    threshold_model,
)


def _image(volume, affine):
    return MetaTensor(torch.from_numpy(volume)[None], affine=torch.as_tensor(affine))


@pytest.mark.parametrize("tta", [False, True])
def test_oblique_anisotropic_input_comes_back_voxel_exact(rng, tta):
    affine = random_oblique_affine(rng, spacing=(0.7, 1.3, 2.5))
    volume = noise_volume((37, 22, 18), rng)
    prediction = Predictor(threshold_model(), options=PredictOptions(tta=tta, device="cpu")).predict(
        _image(volume, affine))
    labels = prediction.labels
    assert labels.shape == (1, 37, 22, 18) and labels.dtype == torch.uint8
    np.testing.assert_allclose(labels.affine.numpy(), affine, atol=1e-9)
    np.testing.assert_array_equal(labels[0].numpy(), expected(volume))
    assert labels.meta["labels"] == ["background", "low", "high"]
    assert prediction.settings["tta"] is tta and set(prediction.timings) >= {"inference_s", "total_s"}


def test_resampling_to_the_card_spacing_keeps_the_input_grid(rng):
    affine = random_oblique_affine(rng, spacing=(0.6, 0.9, 2.0))
    volume = smooth_volume((50, 40, 16), rng)
    model = threshold_model(spacing=(1.2, 1.2, 1.2))
    prediction = Predictor(model, options=PredictOptions(probabilities=True)).predict(_image(volume, affine))
    assert prediction.labels.shape == (1, 50, 40, 16)
    np.testing.assert_allclose(prediction.labels.affine.numpy(), affine, atol=1e-9)
    agreement = (prediction.labels[0].numpy() == expected(volume)).mean()
    assert agreement > 0.95
    assert prediction.probabilities.shape == (3, 50, 40, 16)


def test_2d_image_with_a_2d_model_and_a_volume_slice_by_slice(rng):
    model = threshold_model(spatial_dims=2)
    picture = noise_volume((33, 21), rng)
    out2d = Predictor(model, options=PredictOptions(tta=True)).predict(_image(picture, np.eye(4))).labels
    assert out2d.shape == (1, 33, 21)
    np.testing.assert_array_equal(out2d[0].numpy(), expected(picture))
    volume = noise_volume((20, 17, 6), rng)
    out3d = Predictor(threshold_model(spatial_dims=2, slice_axis=0)).predict(_image(volume, np.eye(4))).labels
    np.testing.assert_array_equal(out3d[0].numpy(), expected(volume))


def test_2d_image_to_3d_model_fails_clearly(rng):
    with pytest.raises(MedsegError, match="3D model"):
        Predictor(threshold_model()).predict(_image(noise_volume((20, 20), rng), np.eye(4)))


def test_postprocessing_runs_on_the_input_grid(rng):
    volume = np.zeros((30, 30, 30), np.float32)
    volume[5:15, 5:15, 5:15] = 1.0   # big "low" component
    volume[25:27, 25:27, 25:27] = 1.0  # 8 mm3 island
    options = PredictOptions(postprocess=PostprocessSpec(min_island_mm3=10))
    labels = Predictor(threshold_model(), options=options).predict(_image(volume, np.eye(4))).labels[0]
    assert (labels.numpy() == 1).sum() == 1000


def test_options_are_checked_and_fast_means_low_overlap_no_tta():
    with pytest.raises(MedsegError, match="overlap"):
        Predictor(threshold_model(), options=PredictOptions(overlap=1.0))
    with pytest.raises(MedsegError, match="at most 16"):
        Predictor(threshold_model(out_channels=20, labels=tuple(f"c{i}" for i in range(20))),
                  options=PredictOptions(probabilities=True))
    fast = Predictor(threshold_model(), options=PredictOptions(fast=True, tta=True, overlap=0.5))
    assert fast.tta is False and fast.overlap == 0.25
    assert Predictor(threshold_model(), options=PredictOptions(device="cpu")).tta is True   # nnU-Net's default


def test_a_cpu_runner_can_replace_the_network(rng):
    calls = []
    model = threshold_model()

    def runner(x):
        calls.append(tuple(x.shape))
        return model(x)

    volume = noise_volume((20, 20, 20), rng)
    labels = Predictor(model, cpu_network=runner).predict(_image(volume, np.eye(4))).labels
    assert calls and calls[0][1:] == (1, 16, 16, 16)
    np.testing.assert_array_equal(labels[0].numpy(), expected(volume))


def test_torch_keeps_to_one_thread_beside_a_compiled_runtime_and_restores_after(rng):
    import torch

    seen = []
    model = threshold_model()

    def runner(x):
        seen.append(torch.get_num_threads())
        return model(x)

    torch.set_num_threads(2)
    predictor = Predictor(model, options=PredictOptions(device="cpu", threads=2), cpu_network=runner)
    prediction = predictor.predict(_image(noise_volume((12, 12, 12), rng), np.eye(4)))
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    assert prediction.settings["glue_threads"] == 1
