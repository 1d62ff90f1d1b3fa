import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.inference.checks import check_dimensions, check_modality, match_channels
from tests.inference._models import threshold_card


def test_2d_image_to_3d_model_is_a_clear_error():
    with pytest.raises(MedsegError, match="2D image but threshold is a 3D model"):
        check_dimensions(torch.zeros(1, 20, 20), threshold_card(), "x.png")
    check_dimensions(torch.zeros(1, 20, 20), threshold_card(spatial_dims=2))


def test_colour_images_become_grey_and_wrong_channel_counts_fail():
    grey, warnings = match_channels(torch.ones(3, 4, 4) * 100, threshold_card(spatial_dims=2))
    assert grey.shape == (1, 4, 4) and torch.allclose(grey, torch.full((1, 4, 4), 100.0)) and warnings
    with pytest.raises(MedsegError, match="expects 1"):
        match_channels(torch.zeros(2, 4, 4, 4), threshold_card())


def test_modality_mismatch_warns():
    ct = torch.full((1, 20, 20, 20), 40.0)
    ct[:, :5] = -1000.0
    mr = torch.rand(1, 20, 20, 20) * 500
    assert check_modality(mr, threshold_card(modality="CT"))
    assert not check_modality(ct, threshold_card(modality="CT"))
    assert check_modality(ct, threshold_card(modality="MRI"))
    assert not check_modality(ct, threshold_card(modality="any"))
