"""A model whose output is known exactly: a fixed 1x1(x1) convolution that thresholds intensity.

Logits (0, 10(x - 0.5), 20x - 20) make argmax = (x > 0.5) + (x > 1.5) for every voxel, independent of
the window, so stitching, TTA and the mapping back to the input grid can be checked voxel for voxel.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from medseg.core.card import Intensity, ModelCard, Pretrained
from medseg.models import get_entry, register_model

LOW, HIGH = 0.5, 1.5
REGISTERED = "medseg_test_threshold"
TAG = "fixed"
WEIGHTS_FILE = "medseg_test_threshold.safetensors"


class ThresholdNet(nn.Module):
    """3 classes from one channel by fixed thresholds; 2D or 3D."""

    def __init__(self, spatial_dims: int = 3) -> None:
        super().__init__()
        conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
        self.conv = conv(1, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.0, 10.0, 20.0]).view(3, 1, *([1] * spatial_dims)))
            self.conv.bias.copy_(torch.tensor([0.0, -10.0 * LOW, -10.0 * LOW - 10.0 * HIGH]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def threshold_card(name: str = "threshold", spatial_dims: int = 3, **changes) -> ModelCard:
    roi = (16, 16, 16) if spatial_dims == 3 else (16, 16)
    card = ModelCard(name=name, spatial_dims=spatial_dims, in_channels=1, out_channels=3,
                     labels=("background", "low", "high"), roi_size=roi, spacing=None,
                     intensity=Intensity("none"), divisible_by=1, orientation="RAS" if spatial_dims == 3 else None,
                     mirror_axes=(0, 1, 2) if spatial_dims == 3 else (0, 1))
    return card.replace(**changes) if changes else card


def threshold_model(spatial_dims: int = 3, **changes) -> nn.Module:
    model = ThresholdNet(spatial_dims)
    model.card = threshold_card(spatial_dims=spatial_dims, **changes)
    return model


def expected(values: np.ndarray) -> np.ndarray:
    return ((values > LOW).astype(np.uint8) + (values > HIGH).astype(np.uint8))


def weights_bytes() -> bytes:
    return save(ThresholdNet(3).state_dict())


def register_threshold() -> str:
    """Register ``medseg_test_threshold.fixed`` (once per process); returns the name.tag."""
    try:
        get_entry(REGISTERED)
    except Exception:  # noqa: BLE001 - not registered yet
        card = threshold_card(REGISTERED, pretrained=(Pretrained(
            tag=TAG, file=WEIGHTS_FILE, sha256=hashlib.sha256(weights_bytes()).hexdigest(), license="CC0"),))
        register_model(card)(lambda card, **kw: ThresholdNet(3))
    return f"{REGISTERED}.{TAG}"


def smooth_volume(shape, rng: np.random.Generator) -> np.ndarray:
    """Values in (0, 2) varying smoothly, kept 0.01 away from the thresholds."""
    grids = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, len(shape))
    value = 1.0 + 0.9 * np.prod([np.sin(3 * g + p) for g, p in zip(grids, phase)], axis=0)
    for t in (LOW, HIGH):
        near = np.abs(value - t) < 0.01
        value[near] = t + 0.02
    return value.astype(np.float32)


def noise_volume(shape, rng: np.random.Generator) -> np.ndarray:
    """Independent values in (0, 2) per voxel, 0.01 away from the thresholds: any misplaced voxel shows."""
    value = rng.uniform(0.0, 2.0, shape)
    for t in (LOW, HIGH):
        near = np.abs(value - t) < 0.01
        value[near] = t + 0.02
    return value.astype(np.float32)
