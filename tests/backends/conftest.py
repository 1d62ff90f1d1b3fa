"""Fixtures for the backend tests: tiny networks with random weights and a private cache folder."""
from __future__ import annotations

import pytest
import torch

from medseg.backends.availability import is_available


def needs(backend: str) -> pytest.MarkDecorator:
    """Skip when ``backend`` (the medseg[cpu] extra) is not installed."""
    return pytest.mark.skipif(not is_available(backend), reason=f"{backend} (medseg[cpu]) not installed")


COMPILED = [pytest.param(b, marks=needs(b)) for b in ("openvino", "onnxruntime")]
ROI = (16, 16, 16)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Never touch ~/.cache in tests."""
    monkeypatch.setenv("MEDSEG_CACHE_DIR", str(tmp_path_factory.mktemp("default_cache")))


def tiny_stunet() -> torch.nn.Module:
    from medseg.models import create_model

    torch.manual_seed(0)
    return create_model("stunet_t", width=4).eval()


def tiny_monai_unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(1)
    return UNet(spatial_dims=3, in_channels=2, out_channels=3, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=1).eval()


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    """One cache for the session: tests that build the same model, window and batch reuse the entry."""
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture
def stunet() -> torch.nn.Module:
    return tiny_stunet()


@pytest.fixture
def windows() -> torch.Tensor:
    """Three windows for one input channel: more than the compiled batch of 2, so padding is used."""
    return torch.randn(3, 1, *ROI, generator=torch.Generator().manual_seed(2))
