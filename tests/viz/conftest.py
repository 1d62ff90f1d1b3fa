"""Agg backend for every viz test, figures closed after each one, and a small anisotropic volume."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def volume():
    """(image, labels, spacing): 20 x 16 x 10 voxels of 1 x 1 x 3 mm, labels 1 and 2 in separate blocks."""
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (20, 16, 10)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    labels[4:9, 4:10, 3:7] = 1
    labels[11:16, 5:11, 2:6] = 2
    return image, labels, (1.0, 1.0, 3.0)
