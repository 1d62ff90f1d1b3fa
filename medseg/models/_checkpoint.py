"""Read checkpoint files safely: ``torch.load(weights_only=True)`` plus an explicit allowlist, or safetensors.

Official checkpoints are more than a state dict. nnU-Net v1 ``.model`` files carry ``plot_stuff`` /
``best_stuff`` with numpy scalars, v2 ``.pth`` files carry ``init_args`` / ``logging`` with numpy scalars
and a ``torch.device``. Those few *data* types are allowlisted by name (both the numpy<2 ``numpy.core``
and numpy>=2 ``numpy._core`` spellings); nothing is ever unpickled beyond that allowlist, so a
checkpoint cannot run code.
"""
from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from medseg.core.errors import MedsegError, scrub_message

# keys under which known checkpoint formats keep the network weights, most specific first
STATE_KEYS = ("network_weights", "state_dict", "model", "model_state", "model_state_dict", "net", "network")


def _numpy_globals() -> list[Any]:
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: list[Any] = [np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct]
    for name in ("scalar", "_reconstruct"):
        obj = getattr(multiarray, name)
        allowed += [(obj, f"numpy.core.multiarray.{name}"), (obj, f"numpy._core.multiarray.{name}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def safe_globals() -> list[Any]:
    """The extra (data-only) types official checkpoints contain, for ``torch.serialization.safe_globals``."""
    import collections

    return _numpy_globals() + [collections.OrderedDict, collections.defaultdict]


def _sniff(path: Path) -> str | None:
    """A reason the file is certainly not a checkpoint (an HTML page, a zip of a folder...), or None."""
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "the file is empty"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head")):
        return "the file is an HTML page, not a checkpoint (the download failed or needs a confirmation click)"
    if text.startswith(b"%pdf"):
        return "the file is a PDF, not a checkpoint"
    return None


def load_checkpoint(path: str | PathLike) -> Any:
    """Load a ``.safetensors`` file or a torch checkpoint with ``weights_only=True`` and the allowlist.

    Raises :class:`MedsegError` naming the file for a missing, truncated or foreign file, and listing the
    disallowed types when the checkpoint contains something beyond plain data.
    """
    p = Path(path)
    if not p.is_file():
        raise MedsegError("checkpoint file not found", path=p)
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(p))
        except Exception as exc:
            raise MedsegError(f"cannot read safetensors file ({exc})", path=p) from exc
    reason = _sniff(p)
    if reason:
        raise MedsegError(reason, path=p, hint="download the file again")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = scrub_message(str(exc))[:200]
        hint = "the file may be truncated or not a PyTorch checkpoint; download it again"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            try:
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(p))
            except Exception:  # noqa: BLE001
                unsafe = []
            hint = ("it contains types medseg does not load for safety"
                    + (f" ({', '.join(unsafe[:5])})" if unsafe else "")
                    + "; re-save only its state_dict from a trusted environment")
        raise MedsegError(f"cannot load checkpoint ({type(exc).__name__}: {first})", path=p, hint=hint) from exc


def extract_state_dict(obj: Any, *, path: str | PathLike | None = None) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint (a bare state dict or one under a known key)."""
    if isinstance(obj, Mapping):
        for key in STATE_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise MedsegError(f"no state dict found in checkpoint (top level: {keys})", path=path)
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_key(key: str, prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> str:
    """Remove DataParallel/DDP (``module.``) and ``torch.compile`` (``_orig_mod.``) prefixes, repeatedly."""
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def strip_prefix(state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...] = WRAPPER_PREFIXES
                 ) -> dict[str, torch.Tensor]:
    """:func:`strip_key` applied to every key of a state dict."""
    return {strip_key(key, prefixes): value for key, value in state.items()}
