"""Training checkpoints: atomic writes and weights-only loading, with everything needed to resume exactly."""
from __future__ import annotations

import random
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from medseg.core.atomic import atomic_path
from medseg.core.errors import MedsegError, scrub_message


def rng_state() -> dict:
    """Python, numpy and torch RNG states in weights-only-loadable types."""
    np_state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: str | PathLike, **state) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: a kill never leaves a torn checkpoint."""
    with atomic_path(path) as temp:
        torch.save(state, temp)


def load_checkpoint(path: str | PathLike) -> dict:
    """Load a training checkpoint with ``weights_only=True``."""
    p = Path(path)
    if not p.is_file():
        raise MedsegError("checkpoint not found", path=p)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = scrub_message(str(exc)).split(". ")[0][:160]
        raise MedsegError(f"cannot load checkpoint ({type(exc).__name__}: {reason})", path=p,
                          hint="the file may be truncated; use the previous checkpoint") from exc
