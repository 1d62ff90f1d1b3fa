"""Models with a known output for the SAUNA/regression and sigmoid prediction paths.

``SignedNet`` is a 1x1(x1) convolution ``z = SLOPE * (x - CENTRE)``: a SAUNA card reads it as the signed
map ``y = tanh(z)`` and a sigmoid card as the logit, so every voxel's soft value is a known function of the
input intensity, whatever the window, the Gaussian blending or the mirroring.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from medseg.core.card import Intensity, ModelCard, Pretrained
from medseg.models import get_entry, register_model
from medseg.training.config import SaunaConfig
from medseg.training.sauna_target import sauna_card

SLOPE, CENTRE = 4.0, 1.0
REGISTERED = "medseg_test_sauna"
TAG = "fixed"
WEIGHTS_FILE = "medseg_test_sauna.safetensors"


class SignedNet(nn.Module):
    """One output channel ``SLOPE * (x - CENTRE)``; 2D or 3D."""

    def __init__(self, spatial_dims: int = 3) -> None:
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.conv = conv(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(SLOPE)
            self.conv.bias.fill_(-SLOPE * CENTRE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def base_card(name: str = "signed", spatial_dims: int = 3, **changes) -> ModelCard:
    """A softmax-style card with one foreground label (what a recipe starts from)."""
    roi = (16, 16, 16) if spatial_dims == 3 else (16, 16)
    card = ModelCard(name=name, spatial_dims=spatial_dims, in_channels=1, out_channels=2,
                     labels=("background", "blob"), roi_size=roi, spacing=None, intensity=Intensity("none"),
                     divisible_by=1, orientation="RAS" if spatial_dims == 3 else None,
                     mirror_axes=(0, 1, 2) if spatial_dims == 3 else (0, 1))
    return card.replace(**changes) if changes else card


def sauna_model(spatial_dims: int = 3, threshold: float = 0.5, save_soft: bool = False, **changes) -> nn.Module:
    """SignedNet with the card training with ``train.target = "sauna"`` writes (regression, tanh)."""
    model = SignedNet(spatial_dims)
    model.card = sauna_card(base_card(spatial_dims=spatial_dims, **changes),
                            SaunaConfig(threshold=threshold, save_soft=save_soft))
    return model


def sigmoid_model(spatial_dims: int = 3, **changes) -> nn.Module:
    """SignedNet read as a one-class sigmoid model (logit z)."""
    model = SignedNet(spatial_dims)
    model.card = base_card(spatial_dims=spatial_dims, **changes).replace(
        activation="sigmoid", out_channels=1, labels=("blob",))
    return model


def expected_soft(values: np.ndarray) -> np.ndarray:
    """The foreground probability p = (tanh(z) + 1) / 2 of a SAUNA SignedNet."""
    return (np.tanh(SLOPE * (values.astype(np.float64) - CENTRE)) + 1.0) / 2.0


def weights_bytes() -> bytes:
    return save(SignedNet(3).state_dict())


def register_sauna() -> str:
    """Register ``medseg_test_sauna.fixed`` (once per process, a SAUNA card); returns the name.tag."""
    try:
        get_entry(REGISTERED)
    except Exception:  # noqa: BLE001 - not registered yet
        card = sauna_model().card.replace(name=REGISTERED, pretrained=(Pretrained(
            tag=TAG, file=WEIGHTS_FILE, sha256=hashlib.sha256(weights_bytes()).hexdigest(), license="CC0"),))
        register_model(card)(lambda card, **kw: SignedNet(3))
    return f"{REGISTERED}.{TAG}"
