import numpy as np
import torch

from medseg.inference.restore import (
    _labels_general,
    labels_to_grid,
    probabilities_to_grid,
    voxel_map,
)
from tests.conftest import random_oblique_affine


def test_flip_permute_and_scale_map_voxels_exactly(rng):
    model_affine = random_oblique_affine(rng, spacing=(1.0, 2.0, 1.5))
    labels = torch.from_numpy(rng.integers(0, 7, (11, 9, 13)).astype(np.uint8))
    # the input grid: axes permuted (z, x, y), x flipped, and twice as fine along the model's x axis
    step = np.zeros((4, 4))
    step[2, 0] = 1.0
    step[0, 1] = -0.5
    step[1, 2] = 1.0
    step[0, 3] = 10.0
    step[3, 3] = 1.0
    input_affine = model_affine @ step
    shape = (13, 21, 9)
    out = labels_to_grid(labels, model_affine, shape, input_affine)
    assert tuple(out.shape) == shape
    for a, b, c in [(0, 0, 0), (12, 20, 8), (5, 7, 3), (6, 1, 2)]:
        assert out[a, b, c] == labels[int(np.floor(10 - 0.5 * b + 0.5 + 1e-6)), c, a]
    assert torch.equal(out, _labels_general(labels, voxel_map(model_affine, input_affine), shape))


def test_oblique_mapping_uses_the_general_path(rng):
    labels = torch.from_numpy(rng.integers(0, 3, (8, 8, 8)).astype(np.uint8))
    rotation = random_oblique_affine(rng, spacing=(1, 1, 1))
    out = labels_to_grid(labels, np.eye(4), (8, 8, 8), rotation)
    assert out.shape == (8, 8, 8) and set(out.unique().tolist()) <= {0, 1, 2}


def test_probabilities_interpolate_linearly_on_identity():
    probs = torch.rand(2, 6, 5, 4)
    out = probabilities_to_grid(probs, np.eye(4), (6, 5, 4), np.eye(4))
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), probs, atol=1e-3)
