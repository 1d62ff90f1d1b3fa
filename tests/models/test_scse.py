"""scSE keeps shapes (2D and 3D) and the U-Net switch adds blocks without renaming existing weights."""
from __future__ import annotations

import pytest
import torch

from medseg.models import create_model
from medseg.models._scse import SCSE


@pytest.mark.parametrize("shape", [(2, 6, 9, 11), (1, 6, 5, 7, 4)])
def test_scse_keeps_shape_and_recalibrates(shape):
    block = SCSE(len(shape) - 2, 6)
    x = torch.randn(*shape)
    y = block(x)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)


@pytest.mark.parametrize("name,roi", [("nnunet_plain_2d", (32, 32)), ("nnunet_residual", (16, 16, 16))])
def test_unet_scse_switch(name, roi):
    plain = create_model(name, roi_size=roi, base_features=4)
    gated = create_model(name, roi_size=roi, base_features=4, scse=True).eval()
    assert set(plain.state_dict()) < set(gated.state_dict())  # additive: old keys unchanged
    assert any(isinstance(m, SCSE) for m in gated.modules())
    with torch.no_grad():
        assert gated(torch.randn(1, 1, *roi)).shape == (1, 2, *roi)
