"""Prediction with regression (SAUNA) and sigmoid models: soft map, threshold, geometry, option checks."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.core.errors import MedsegError
from medseg.inference.predictor import PredictOptions, Predictor
from medseg.inference.sliding_window import EngineOptions, sliding_window_labels
from tests.conftest import random_oblique_affine
from tests.inference._models import smooth_volume, threshold_model
from tests.inference._sauna_models import (
    CENTRE,
    SLOPE,
    expected_soft,
    sauna_model,
    sigmoid_model,
)


def _image(volume, affine):
    return MetaTensor(torch.from_numpy(volume)[None], affine=torch.as_tensor(affine))


def _options(**kw):
    return PredictOptions(device="cpu", threads=1, **kw)


@pytest.mark.parametrize("tta", [False, True])
def test_soft_map_is_the_models_output_on_an_oblique_scan(rng, tta):
    affine = random_oblique_affine(rng, spacing=(0.7, 1.3, 2.5))
    volume = smooth_volume((37, 22, 18), rng)
    prediction = Predictor(sauna_model(), options=_options(tta=tta, save_soft=True)).predict(_image(volume, affine))
    soft, labels = prediction.soft, prediction.labels
    assert soft.shape == (1, 37, 22, 18) and soft.dtype == torch.float32
    np.testing.assert_allclose(labels.affine.numpy(), affine, atol=1e-9)
    # every window sees the same per-voxel value, so blending and mirroring must give it back (float16 storage)
    np.testing.assert_allclose(soft[0].numpy(), expected_soft(volume), atol=1e-3)
    np.testing.assert_array_equal(labels[0].numpy(), (soft[0].numpy() > 0.5).astype(np.uint8))
    assert labels.meta["labels"] == ["background", "blob"] and labels.dtype == torch.uint8
    assert prediction.settings["threshold"] == 0.5 and prediction.settings["output_activation"] == "tanh"


def test_resampled_soft_map_is_thresholded_on_the_scan_grid(rng):
    """Anisotropic scan, isotropic model grid: the map is interpolated back, then thresholded there."""
    affine = random_oblique_affine(rng, spacing=(0.6, 0.9, 2.0))
    volume = smooth_volume((40, 30, 14), rng)
    masks = []
    for threshold in (0.3, 0.5, 0.7):
        model = sauna_model(spacing=(1.2, 1.2, 1.2))
        prediction = Predictor(model, options=_options(threshold=threshold, save_soft=True)).predict(
            _image(volume, affine))
        soft = prediction.soft[0].numpy()
        assert soft.shape == volume.shape and 0.0 <= soft.min() and soft.max() <= 1.0
        mask = prediction.labels[0].numpy()
        np.testing.assert_array_equal(mask, (soft > threshold).astype(np.uint8))
        assert np.abs(soft - expected_soft(volume)).mean() < 0.05   # linear interpolation of a smooth map
        masks.append(mask.astype(bool))
    assert masks[0].sum() > masks[1].sum() > masks[2].sum() > 0
    assert not (masks[2] & ~masks[1]).any() and not (masks[1] & ~masks[0]).any()  # a higher threshold never grows


def test_card_threshold_and_save_soft_are_the_defaults(rng):
    volume = smooth_volume((20, 18, 16), rng)
    model = sauna_model(threshold=0.7, save_soft=True)
    prediction = Predictor(model, options=_options()).predict(_image(volume, np.eye(4)))
    assert prediction.soft is not None and prediction.settings["threshold"] == 0.7
    np.testing.assert_array_equal(prediction.labels[0].numpy(), (prediction.soft[0].numpy() > 0.7).astype(np.uint8))
    plain = Predictor(sauna_model(), options=_options()).predict(_image(volume, np.eye(4)))
    assert plain.soft is None and plain.probabilities is None
    declined = Predictor(model, options=_options(save_soft=False, threshold=0.5)).predict(_image(volume, np.eye(4)))
    assert declined.soft is None and declined.settings["threshold"] == 0.5
    np.testing.assert_array_equal(declined.labels[0].numpy(), plain.labels[0].numpy())


def test_2d_sauna_model_on_a_picture(rng):
    picture = smooth_volume((33, 21), rng)
    prediction = Predictor(sauna_model(spatial_dims=2), options=_options(tta=True, save_soft=True)).predict(
        _image(picture, np.eye(4)))
    assert prediction.labels.shape == (1, 33, 21) and prediction.soft.shape == (1, 33, 21)
    np.testing.assert_allclose(prediction.soft[0].numpy(), expected_soft(picture), atol=1e-3)
    np.testing.assert_array_equal(prediction.labels[0].numpy(), (prediction.soft[0].numpy() > 0.5).astype(np.uint8))


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_sigmoid_models_use_the_same_threshold(rng, threshold):
    volume = smooth_volume((24, 20, 18), rng)
    logit = SLOPE * (volume.astype(np.float64) - CENTRE)
    prob = 1 / (1 + np.exp(-logit))
    prediction = Predictor(sigmoid_model(), options=_options(threshold=threshold)).predict(_image(volume, np.eye(4)))
    clear = np.abs(prob - threshold) > 1e-3
    np.testing.assert_array_equal(prediction.labels[0].numpy()[clear], (prob > threshold)[clear])
    assert prediction.labels.meta["labels"] == ["background", "blob"]


def test_regression_stitching_keeps_only_a_slab_of_cells():
    """The regression path streams like the label path: live cells stay a slab, not the whole grid."""
    shape, roi = (96, 32, 32), (16, 16, 16)
    x = torch.rand(1, *shape)
    def net(w):  # the signed map of a regression model
        return torch.tanh(SLOPE * (w - 0.5))

    result = sliding_window_labels(x, net, channels=1, activation="regression",
                                   options=EngineOptions(roi=roi, overlap=0.5, batch_size=2, threshold=0.6))
    assert result.probabilities.shape == (1, *shape) and result.probabilities.dtype == torch.float16
    whole = 4 * x.numel()
    assert 0 < result.peak_stitch_bytes < whole / 2
    np.testing.assert_array_equal(result.labels.numpy(), (result.probabilities[0].float() > 0.6).numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sauna_on_cuda_matches_the_cpu(rng):
    volume = smooth_volume((40, 36, 30), rng)
    image = _image(volume, random_oblique_affine(rng))
    maps = [Predictor(sauna_model(spacing=(1.0, 1.0, 1.0)), options=PredictOptions(device=device, save_soft=True))
            .predict(image).soft[0].numpy() for device in ("cpu", "cuda")]
    assert np.abs(maps[0] - maps[1]).max() < 5e-3   # AMP float16 windows on the GPU


def test_bad_options_are_one_line_errors():
    with pytest.raises(MedsegError, match="strictly between 0 and 1, got 1.5"):
        Predictor(sauna_model(), options=_options(threshold=1.5))
    with pytest.raises(MedsegError, match="softmax model"):
        Predictor(threshold_model(), options=_options(threshold=0.6))
    with pytest.raises(MedsegError, match="--save-soft writes the soft map of regression") as info:
        Predictor(threshold_model(), options=_options(save_soft=True))
    assert "--probabilities" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(MedsegError, match="use --save-soft"):
        Predictor(sauna_model(), options=_options(probabilities=True))
    with pytest.raises(MedsegError, match="sauna.activation must be 'tanh' or 'sigmoid'"):  # refused by the card
        sauna_model().card.replace(postprocess={"sauna": {"activation": "relu"}})
