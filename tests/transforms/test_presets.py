import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.core.card import Intensity, ModelCard
from medseg.transforms import build_preprocessing, target_spacing


def _card(**changes):
    card = ModelCard(name="t", spatial_dims=3, in_channels=1, out_channels=2, labels=("bg", "fg"),
                     roi_size=(16, 16, 16), spacing=(1.5, 1.5, 1.5), intensity=Intensity("ct", -100, 200))
    return card.replace(**changes)


def _image(affine, shape=(40, 30, 20), dtype=torch.int16):
    data = torch.arange(int(np.prod(shape)), dtype=torch.int64).reshape(1, *shape) % 700 - 300
    return MetaTensor(data.to(dtype), affine=torch.as_tensor(affine))


def test_reorients_resamples_and_normalises_from_the_card():
    affine = np.diag([-0.75, -0.75, 3.0, 1.0])
    affine[:3, 3] = [10, 20, 30]
    out = build_preprocessing(_card())({"image": _image(affine)})["image"]
    assert out.dtype == torch.float32
    assert tuple(out.shape[1:]) == (20, 15, 40)                          # 40*0.75/1.5, 30*0.75/1.5, 20*3/1.5
    assert np.allclose(np.diag(out.affine.numpy())[:3], [1.5, 1.5, 1.5])  # RAS, target spacing
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0          # CT window mapped to [-1, 1]
    # the field of view is kept: first and last voxel centres span the same world extent
    src_extent = (np.array([39, 29, 19]) * np.array([0.75, 0.75, 3.0]))
    new_extent = (np.array(out.shape[1:]) - 1) * 1.5
    assert np.all(np.abs((src_extent + [0.75, 0.75, 3.0]) - (new_extent + 1.5)) < 1e-6)


def test_does_not_modify_the_caller_image():
    image = MetaTensor(torch.rand(1, 12, 12, 12) * 100, affine=torch.eye(4))
    before = image.clone()
    build_preprocessing(_card(spacing=None, intensity=Intensity("zscore")))({"image": image})
    assert torch.equal(image.as_tensor(), before.as_tensor())


def test_2d_images_get_intensity_only():
    card = _card(spatial_dims=2, roi_size=(16, 16), spacing=(0.5, 0.5), orientation=None,
                 intensity=Intensity("minmax"))
    image = MetaTensor(torch.rand(1, 30, 20) * 255, affine=torch.diag(torch.tensor([-1.0, -1.0, 1.0, 1.0])))
    out = build_preprocessing(card, spatial_dims=2)({"image": image})["image"]
    assert out.shape == image.shape
    assert float(out.min()) == 0.0 and float(out.max()) == pytest.approx(1.0)


def test_2d_model_spacing_keeps_the_slice_axis():
    card = _card(spatial_dims=2, roi_size=(16, 16), spacing=(1.0, 1.0), slice_axis=2)
    assert target_spacing(card) == (1.0, 1.0, None)
    assert target_spacing(card.replace(slice_axis=0)) == (None, 1.0, 1.0)
    assert target_spacing(card.replace(spacing=(2.0, 1.0, 1.0))) == (2.0, 1.0, 1.0)
