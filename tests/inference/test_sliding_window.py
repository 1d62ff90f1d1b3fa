import numpy as np
import pytest
import torch

from medseg.inference.sliding_window import (
    EngineOptions,
    auto_batch_size,
    sliding_window_labels,
    window_network,
)
from tests.inference._models import ThresholdNet, expected, noise_volume


def _run(volume, roi=(16, 16, 16), spatial_dims=3, slice_axis=2, **options):
    net = window_network(ThresholdNet(spatial_dims), spatial_dims=spatial_dims, slice_axis=slice_axis)
    image = torch.from_numpy(volume)[None]
    return sliding_window_labels(image, net, channels=3, activation="softmax",
                                 options=EngineOptions(roi=roi, **options))


@pytest.mark.parametrize("overlap,batch,tta,accumulate", [
    (0.5, 1, (), "float32"), (0.25, 3, (), "float32"), (0.5, 2, (0, 1, 2), "float32"),
    (0.75, 4, (), "float16"), (0.0, 2, (1,), "auto"),
])
def test_stitched_labels_equal_the_voxelwise_answer(rng, overlap, batch, tta, accumulate):
    volume = noise_volume((41, 30, 23), rng)
    result = _run(volume, overlap=overlap, batch_size=batch, mirror_axes=tta, accumulate=accumulate)
    assert result.labels.dtype == torch.uint8
    np.testing.assert_array_equal(result.labels.numpy(), expected(volume))


def test_scan_smaller_than_the_window_is_padded_then_cropped(rng):
    volume = noise_volume((5, 20, 9), rng)
    result = _run(volume, roi=(16, 16, 16))
    assert tuple(result.labels.shape) == volume.shape
    np.testing.assert_array_equal(result.labels.numpy(), expected(volume))


@pytest.mark.parametrize("slice_axis", [0, 1, 2])
def test_2d_model_runs_slice_by_slice_along_the_slice_axis(rng, slice_axis):
    volume = noise_volume((12, 19, 7), rng)
    roi = [16, 16]
    roi.insert(slice_axis, 1)
    order = (slice_axis, *[a for a in range(3) if a != slice_axis])
    result = _run(volume, roi=tuple(roi), spatial_dims=2, slice_axis=slice_axis, order=order,
                  mirror_axes=tuple(a for a in range(3) if a != slice_axis), batch_size=4)
    np.testing.assert_array_equal(result.labels.numpy(), expected(volume))


def test_probabilities_are_normalised_and_agree_with_labels(rng):
    volume = noise_volume((20, 20, 20), rng)
    result = _run(volume, probabilities=True, mirror_axes=(0,))
    probs = result.probabilities.float()
    assert probs.shape == (3, 20, 20, 20)
    assert torch.allclose(probs.sum(0), torch.ones(20, 20, 20), atol=3e-3)
    assert torch.equal(probs.argmax(0).to(torch.uint8), result.labels)


def test_sigmoid_models_label_the_strongest_positive_channel():
    net = lambda x: torch.cat([x - 0.5, 2 * (x - 1.0)], 1)
    image = torch.tensor([0.2, 0.7, 1.6, 3.0]).view(1, 4, 1, 1).expand(1, 4, 3, 3).contiguous()
    result = sliding_window_labels(image, net, channels=2, activation="sigmoid",
                                   options=EngineOptions(roi=(2, 2, 2)))
    assert result.labels[:, 1, 1].tolist() == [0, 1, 2, 2]


def test_live_memory_stays_a_slab_not_the_volume(rng):
    volume = noise_volume((16, 16, 160), rng)
    net = window_network(ThresholdNet(3), spatial_dims=3)
    from medseg.inference import stitcher as stitcher_module
    seen = []
    original = stitcher_module.CellStitcher.finalize_through

    def spy(self, index):
        original(self, index)
        seen.append(self.peak_live_bytes)

    stitcher_module.CellStitcher.finalize_through = spy
    try:
        sliding_window_labels(torch.from_numpy(volume)[None], net, channels=3, activation="softmax",
                              options=EngineOptions(roi=(16, 16, 16), accumulate="float32"))
    finally:
        stitcher_module.CellStitcher.finalize_through = original
    full = 3 * volume.size * 4
    assert max(seen) <= 3 * 16 * 16 * 16 * 4 * 1.01 < full / 5


def test_auto_batch_size_respects_the_memory_budget():
    assert auto_batch_size(3, (40, 56, 40), "cpu") == 8
    assert auto_batch_size(105, (128, 128, 128), "cpu") == 1
