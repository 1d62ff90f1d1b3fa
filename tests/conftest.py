"""Shared fixtures: small synthetic volumes built in code, and the optional real data in ../shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "medseg" / "data" / "sample" / "hippocampus_001.nii.gz"
SAMPLE_LABEL = ROOT / "medseg" / "data" / "sample" / "hippocampus_001_label.nii.gz"


@pytest.fixture(scope="session", autouse=True)
def _session_compiled_cache(tmp_path_factory):
    """One compiled-model cache for the whole run, never ~/.cache: compiled networks and the accuracy guard's
    remembered verdicts (``guard.json``) from a user's earlier runs must not change what a test sees."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDSEG_CACHE_DIR", str(tmp_path_factory.mktemp("compiled_cache")))
        yield


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def random_oblique_affine(rng: np.random.Generator, spacing=(0.7, 1.3, 2.5)) -> np.ndarray:
    """A random rotation times an anisotropic spacing, with a random origin (a 'real scanner' affine)."""
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    affine = np.eye(4)
    affine[:3, :3] = q @ np.diag(spacing)
    affine[:3, 3] = rng.uniform(-120, 120, 3)
    return affine


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _medseg_logger_restored():
    """CLI tests route medseg's logger through rich (``propagate=False``); put it back so later tests' caplog
    sees records whatever order the tests run in."""
    import logging

    logger = logging.getLogger("medseg")
    state = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = state


@pytest.fixture
def one_torch_thread():
    """One torch thread while a test runs: tiny networks spend most of a multi-threaded forward waiting on the
    other threads of a busy machine (4 ms with one thread, over a second with two under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
