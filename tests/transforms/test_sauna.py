"""SAUNA soft labels on analytic shapes (disc, thin line, cube), 2D and 3D, and the output side."""
import numpy as np
import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.transforms.sauna import (
    SaunaSoftLabel,
    SaunaSoftLabeld,
    sauna_activation,
    sauna_map,
    sauna_soft_label,
    soft_to_mask,
    soft_to_probability,
)


def disc(shape=(64, 64), centre=(32, 32), radius=10.0) -> np.ndarray:
    grid = np.indices(shape)
    return ((grid - np.array(centre)[:, None, None]) ** 2).sum(0) <= radius ** 2


def test_disc_centre_is_one_boundary_graded_and_far_background_minus_one():
    from scipy.ndimage import distance_transform_edt

    mask = disc()
    y = sauna_map(mask)
    d_in = distance_transform_edt(mask)
    half_width = d_in.max()                               # T = 11 for a radius-10 digital disc
    assert y[32, 32] == pytest.approx(1.0)
    assert y.min() >= -1 and y.max() <= 1
    assert np.array_equal(y > 0, mask)                    # sign(y) is the hard label
    assert np.all(np.abs(y) >= 1 / half_width - 1e-6)     # never 0
    assert y[0, 0] == pytest.approx(-1.0)                 # farther than T from the disc
    # within half a window (k = 11 -> 5 px) of the centre tau = T, so y = d_in / T: monotonic in distance
    profile, diagonal = y[32, 32:64], np.diagonal(y[32:64, 32:64])
    np.testing.assert_allclose(profile[:6], d_in[32, 32:38] / half_width, atol=1e-6)
    assert np.all(np.diff(profile[:6]) < 0) and np.all(np.diff(diagonal[:4]) < 0)
    # rim: a thick structure's boundary is uncertain (the formula's plateau is about 1 - 5/11)
    assert 0.3 < profile[10] < 0.65 and 0.3 < diagonal[7] < 0.65
    # outside: uncertain next to the disc, monotonic down to -1 with distance
    assert -0.6 < profile[11] < 0 and -0.6 < diagonal[8] < 0
    assert np.all(np.diff(profile[11:]) <= 1e-6) and np.all(np.diff(diagonal[8:]) <= 1e-6)
    assert profile[-1] == -1 and diagonal[-1] == -1


def test_thin_line_is_more_certain_than_the_rim_of_a_thick_structure():
    mask = np.zeros((40, 80), bool)
    mask[:, 10:13] = True        # 3-px vessel
    mask[:, 40:51] = True        # 11-px vessel: T = 6
    y = sauna_map(mask)
    # the documented toy check (models.md 5.1): thin column [0.83, 1, 0.83], thick 0.5 ... 1 ... 0.5, -0.5 outside
    np.testing.assert_allclose(y[20, 10:13], [5 / 6, 1, 5 / 6], atol=1e-6)
    np.testing.assert_allclose(y[20, [40, 45, 50]], [0.5, 1, 0.5], atol=1e-6)
    assert y[20, 39] == pytest.approx(-0.5) and y[20, 51] == pytest.approx(-0.5)
    assert y[20, 10] > y[20, 40]                           # thin-vessel boundary is more certain


def test_single_pixel_line_alone_is_all_certain():
    mask = np.zeros((32, 32), bool)
    mask[16, 4:28] = True
    y = sauna_map(mask)
    assert np.all(y[16, 4:28] == 1.0)                      # T = 1: every line pixel is a centreline
    assert np.all(y[~mask] == -1.0)


def test_cube_3d_centre_boundary_monotonic_and_spacing_consistent():
    mask = np.zeros((24, 24, 24), bool)
    mask[6:18, 6:18, 6:18] = True
    y = sauna_map(mask)
    assert y.shape == mask.shape and y.dtype == np.float32
    assert y[11, 11, 11] == pytest.approx(1.0) and y[12, 12, 12] == pytest.approx(1.0)
    assert np.array_equal(y > 0, mask)
    profile = y[:12, 11, 11]                                 # outside -> face -> centre (T = 6, k = 7)
    assert np.all(np.diff(profile) >= -1e-6)                 # monotonic with the distance to the surface
    np.testing.assert_allclose(profile[6:], [0.5, 0.5, 0.5, 4 / 6, 5 / 6, 1.0], atol=1e-6)
    np.testing.assert_allclose(profile[:6], [-1.0, -5 / 6, -4 / 6, -0.5, -0.5, -0.5], atol=1e-6)
    # isotropic spacing only rescales distances: the label is unchanged
    np.testing.assert_allclose(sauna_map(mask, spacing=(2.0, 2.0, 2.0)), y, atol=1e-6)


def test_empty_and_full_masks_and_bad_spacing():
    assert np.all(sauna_map(np.zeros((8, 8))) == -1)
    assert np.all(sauna_map(np.ones((4, 8, 8))) == 1)
    with pytest.raises(MedsegError, match="spacing"):
        sauna_map(np.ones((8, 8)), spacing=(1.0, 1.0, 1.0))


def test_per_class_channels_and_dict_transform_keep_meta():
    from monai.data import MetaTensor

    label = np.zeros((1, 32, 32, 16), np.uint8)
    label[0, 4:12, 4:12, 4:12] = 1
    label[0, 18:28, 18:28, 4:12] = 2
    soft = sauna_soft_label(label, classes=(1, 2))
    assert soft.shape == (2, 32, 32, 16)
    assert np.array_equal(soft[0] > 0, label[0] == 1) and np.array_equal(soft[1] > 0, label[0] == 2)
    affine = torch.diag(torch.tensor([0.5, 0.5, 2.0, 1.0]))
    data = {"label": MetaTensor(torch.from_numpy(label), affine=affine)}
    out = SaunaSoftLabeld("label", classes=(1, 2), output_key="sauna")(data)
    assert out["label"] is data["label"] and isinstance(out["sauna"], MetaTensor)
    torch.testing.assert_close(out["sauna"].affine, affine.double(), check_dtype=False)
    np.testing.assert_allclose(out["sauna"].numpy(), soft)
    binary = SaunaSoftLabel()(torch.from_numpy(label))      # None: foreground = any label > 0
    assert binary.shape == (1, 32, 32, 16) and torch.equal(binary[0] > 0, torch.from_numpy(label[0] > 0))
    with pytest.raises(MedsegError, match="channel-first"):
        sauna_soft_label(label[0, :, :, 0])


def test_soft_to_mask_threshold_is_on_the_probability():
    y = torch.tensor([[[-1.0, -0.1, 0.1, 1.0]]])          # (K=1, 1, 4)
    assert soft_to_mask(y).tolist() == [[0, 0, 1, 1]]       # default 0.5 <=> y > 0
    assert soft_to_mask(y, 0.9).tolist() == [[0, 0, 0, 1]]  # (1 + 1) / 2 > 0.9 only at y = 1
    assert soft_to_mask(y.numpy(), 0.5).dtype == np.uint8
    np.testing.assert_allclose(soft_to_probability(y).flatten().tolist(), [0.0, 0.45, 0.55, 1.0], atol=1e-6)
    two = torch.tensor([[[-0.5, 0.2, 0.6]], [[-0.8, 0.4, 0.1]]])  # (K=2, 1, 3)
    assert soft_to_mask(two).tolist() == [[0, 2, 1]]        # most confident foreground class wins
    batched = soft_to_mask(two[None], channel_dim=1)
    assert batched.shape == (1, 1, 3)
    with pytest.raises(MedsegError, match="threshold"):
        soft_to_mask(y, 1.0)


def test_round_trip_soft_label_to_mask_recovers_the_mask():
    mask = disc((48, 48), (20, 26), 7.0)
    soft = sauna_soft_label(mask[None].astype(np.uint8))
    assert np.array_equal(soft_to_mask(soft), mask.astype(np.uint8))


def test_sigmoid_activation_is_the_same_signed_map():
    z = torch.linspace(-6, 6, 13)
    torch.testing.assert_close(sauna_activation(2 * z, "sigmoid"), sauna_activation(z, "tanh"))
    with pytest.raises(MedsegError):
        sauna_activation(z, "relu")


@pytest.mark.parametrize("shape, spacing", [((70, 60), None), ((40, 36, 30), (0.8, 0.8, 2.5))])
def test_bounding_box_shortcut_is_exact(shape, spacing):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    for _ in range(3):
        mask = np.zeros(shape, bool)
        part = tuple(slice(4, s // 2) for s in shape)          # blobs in one corner, thin bits included
        mask[part] = gaussian_filter(rng.random(mask[part].shape), 1.5) > 0.55
        np.testing.assert_array_equal(sauna_map(mask, spacing), sauna_map(mask, spacing, crop=False))
