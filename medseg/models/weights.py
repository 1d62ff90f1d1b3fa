"""Pretrained weights: find the local file, verify its sha256, load it safely.

Nothing is downloaded. Files are looked up in: the ``weights_dir`` argument, ``$MEDSEG_WEIGHTS_DIR``,
the repository's ``pretrained/`` folder, then ``~/.cache/medseg/weights``.
"""
from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.core.log import get_logger

logger = get_logger(__name__)

PACKAGE_PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"


def search_dirs(weights_dir: str | PathLike | None = None) -> list[Path]:
    """The folders searched for weight files, in order."""
    dirs = []
    if weights_dir:
        dirs.append(Path(weights_dir))
    if os.environ.get("MEDSEG_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["MEDSEG_WEIGHTS_DIR"]))
    dirs += [PACKAGE_PRETRAINED, Path.cwd() / "pretrained", Path.home() / ".cache" / "medseg" / "weights"]
    return dirs


def find_weights(file: str, weights_dir: str | PathLike | None = None) -> Path | None:
    """The first existing ``file`` in :func:`search_dirs`, or None."""
    for folder in search_dirs(weights_dir):
        candidate = folder / file
        if candidate.is_file():
            return candidate
    return None


def verify_sha256(path: Path, expected: str) -> None:
    """Raise a :class:`MedsegError` naming both hashes when the file's sha256 differs."""
    actual = sha256_file(path)
    if actual != expected:
        raise MedsegError(
            f"sha256 mismatch: expected {expected}, found {actual}",
            path=path,
            hint="the file is corrupt or a different version; fetch it again or import it with `medseg models import`",
        )


def read_state_dict(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Load tensors from a ``.safetensors`` file or a weights-only torch file (never unpickling code)."""
    p = Path(path)
    if not p.is_file():
        raise MedsegError("weights file not found", path=p)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p))
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unreadable checkpoint
        raise MedsegError(
            f"cannot load weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})",
            path=p,
            hint="the file may be truncated, an HTML page, or not a weights-only checkpoint",
        ) from exc
    for key in ("state_dict", "network_weights", "model", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise MedsegError("does not hold a state_dict", path=p)
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str | PathLike) -> None:
    """Strictly load ``state`` into ``model``, raising with the mismatching tensors named."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch: " + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]))
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise MedsegError(
            "checkpoint does not fit this architecture: " + "; ".join(parts),
            path=source,
            hint="check the model name/size, or use `medseg finetune` to adapt heads and channels",
        )
    model.load_state_dict(state, strict=True)


def load_pretrained(model: nn.Module, card: ModelCard, tag: str, *, weights_dir=None) -> None:
    """Load the weights of pretrained entry ``tag`` after verifying their sha256."""
    entry = card.get_pretrained(tag)
    path = find_weights(entry.file, weights_dir)
    if path is None:
        where = ", ".join(str(d) for d in search_dirs(weights_dir))
        hint = f"place {entry.file} in one of: {where}"
        if entry.url:
            hint += f"; it can be downloaded from {entry.url}, then `medseg models import {card.name} FILE`"
        raise MedsegError(f"weights for {card.name}.{tag} not found", path=entry.file, hint=hint)
    verify_sha256(path, entry.sha256)
    load_into(model, read_state_dict(path), source=path)
    logger.info("loaded %s.%s from %s", card.name, tag, path)


def load_checkpoint_file(model: nn.Module, path: str | PathLike) -> None:
    """Load a user-given checkpoint file (no sha256 to check against) strictly into ``model``."""
    load_into(model, read_state_dict(path), source=path)
