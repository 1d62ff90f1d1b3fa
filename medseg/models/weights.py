"""Pretrained weights: find the local file, verify its sha256, load it safely; save and import weights.

Nothing is downloaded. Files are looked up in: the ``weights_dir`` argument, ``$MEDSEG_WEIGHTS_DIR``,
the weights shipped inside the package (``medseg/data/pretrained``, found with ``importlib.resources``, so
a wheel install has them), ``./pretrained``, then ``~/.cache/medseg/weights``.

A card entry whose authors publish no hash (``sha256=None``) is pinned on import: ``medseg models
import`` writes ``FILE.sha256`` next to the copied file, and every later load is checked against it.
"""
from __future__ import annotations

import os
import shutil
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from medseg.core.atomic import atomic_path, atomic_write_text
from medseg.core.card import ModelCard, Pretrained
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.core.log import get_logger
from medseg.core.paths import weights_import_dir
from medseg.core.resources import pretrained_dir
from medseg.models._adapt import LoadReport, match_state_dict, raise_for_report
from medseg.models._checkpoint import extract_state_dict, load_checkpoint, strip_prefix

logger = get_logger(__name__)

PACKAGE_PRETRAINED = pretrained_dir()
SIDECAR = ".sha256"


def search_dirs(weights_dir: str | PathLike | None = None) -> list[Path]:
    """The folders searched for weight files, in order."""
    dirs = []
    if weights_dir:
        dirs.append(Path(weights_dir))
    if os.environ.get("MEDSEG_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["MEDSEG_WEIGHTS_DIR"]))
    dirs += [PACKAGE_PRETRAINED, Path.cwd() / "pretrained", Path.home() / ".cache" / "medseg" / "weights"]
    return dirs


def import_dir(weights_dir: str | PathLike | None = None) -> Path:
    """Where ``medseg models import`` copies files: ``weights_dir``, ``$MEDSEG_WEIGHTS_DIR`` or the cache."""
    return weights_import_dir(weights_dir)


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


def expected_sha256(entry: Pretrained, path: Path) -> str:
    """The card's hash, or for unpinned entries the one recorded at import (error if never imported)."""
    if entry.sha256:
        return entry.sha256
    record = path.with_name(path.name + SIDECAR)
    if not record.is_file():
        raise MedsegError(
            "weights with no published sha256 were not imported, so they cannot be verified", path=path,
            hint=f"run `medseg models import NAME {path}` once to check and record the file's hash",
        )
    return record.read_text(encoding="utf-8").split()[0].strip()


def read_state_dict(path: str | PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a weights-only torch checkpoint, ``module.`` prefixes removed."""
    return strip_prefix(extract_state_dict(load_checkpoint(path), path=path))


def load_into(model: nn.Module, state: dict[str, torch.Tensor], *, source: str | PathLike) -> LoadReport:
    """Strictly load ``state`` into ``model``, raising with the mismatching tensors named.

    A model may define ``check_state_dict(state, source)`` to give a clearer error first (HybridGNet
    names a checkpoint trained for another landmark template)."""
    check = getattr(model, "check_state_dict", None)
    if check is not None:
        check(state, source)
    tensors, report = match_state_dict(state, model)
    report.source = str(source)
    raise_for_report(report, what=type(model).__name__, source=source, unused_is_error=True,
                     hint="check the model name/size, or use `medseg finetune` to adapt heads and channels")
    model.load_state_dict(tensors, strict=True)
    return report


def _load_by_format(model: nn.Module, path: Path, fmt: str) -> LoadReport:
    if fmt == "state_dict":
        return load_into(model, read_state_dict(path), source=path)
    if fmt == "nnunet":
        from medseg.models._stunet_import import load_official_stunet

        return load_official_stunet(model, path)
    if fmt == "swin_ssl":
        from medseg.models._swin_import import load_swin_ssl_encoder

        return load_swin_ssl_encoder(model, path)
    if fmt == "monai_bundle":
        from medseg.models._swin_import import load_monai_checkpoint

        return load_monai_checkpoint(model, path)
    raise MedsegError(f"unknown weights format {fmt!r}", path=path)


def load_pretrained(model: nn.Module, card: ModelCard, tag: str, *, weights_dir=None) -> LoadReport:
    """Load the weights of pretrained entry ``tag`` after verifying their sha256."""
    entry = card.get_pretrained(tag)
    path = find_weights(entry.file, weights_dir)
    if path is None:
        where = ", ".join(str(d) for d in search_dirs(weights_dir))
        hint = f"place {entry.file} in one of: {where}"
        if entry.url:
            hint += f"; it can be downloaded from {entry.url}, then `medseg models import {card.name}.{tag} FILE`"
        raise MedsegError(f"weights for {card.name}.{tag} not found", path=entry.file, hint=hint)
    verify_sha256(path, expected_sha256(entry, path))
    report = _load_by_format(model, path, entry.format)
    logger.info("loaded %s.%s from %s", card.name, tag, path)
    return report


def load_checkpoint_file(model: nn.Module, path: str | PathLike) -> LoadReport:
    """Load a user-given checkpoint file (no sha256 to check against) strictly into ``model``."""
    return load_into(model, read_state_dict(path), source=path)


def save_weights(model: nn.Module, path: str | PathLike) -> str:
    """Write the model's tensors atomically (``.safetensors`` or a weights-only torch file); return the sha256."""
    p = Path(path)
    state, seen = {}, set()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu()
        ptr = (tensor.untyped_storage().data_ptr(), tensor.storage_offset()) if tensor.numel() else None
        tensor = tensor.clone() if ptr in seen else tensor.contiguous()
        if ptr is not None:
            seen.add(ptr)
        state[key] = tensor
    with atomic_path(p) as tmp:
        if p.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        else:
            torch.save(state, str(tmp))
    return sha256_file(p)


def verify_architecture(name: str, path: Path, fmt: str) -> None:
    """Read ``path`` with the safe loader and check its keys and shapes against ``name``'s architecture.

    The model is built on the meta device (no memory, no init), so this costs one read of the file.
    Raises :class:`MedsegError` naming what does not fit (missing/unexpected keys, shapes, unsafe types).
    """
    import warnings

    from medseg.models._registry import build_on_meta

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "copying into a meta parameter is a no-op": intended
        model = build_on_meta(name)
        try:
            _load_by_format(model, path, fmt)
        except MedsegError as exc:
            raise MedsegError(f"does not fit {name}: {exc.message}", path=path,
                              hint=exc.hint or f"check that this is the file `medseg models show {name.split('.')[0]}` "
                                               "describes") from None
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
            raise MedsegError(f"does not fit {name} ({fmt} weights): {type(exc).__name__}: {str(exc)[:200]}",
                              path=path, hint=f"check that this is the file `medseg models show "
                                              f"{name.split('.')[0]}` describes") from None


def import_weights(name: str, file: str | PathLike, *, tag: str | None = None,
                   weights_dir: str | PathLike | None = None) -> tuple[Path, str]:
    """Check a user-supplied file against the card and copy it into the local weights folder.

    The file must be readable as a checkpoint and, when the card publishes a sha256, match it; for
    unpinned entries it must load (safe loader) into the entry's architecture with every key and shape
    matching (:func:`verify_architecture`) before it is copied and its hash recorded next to the copy.
    Returns (destination, sha256).
    """
    from medseg.models._checkpoint import _sniff
    from medseg.models._registry import get_entry, split_name

    base, name_tag = split_name(name)
    card = get_entry(base).card
    try:
        entry = card.get_pretrained(tag or name_tag)
    except KeyError as exc:
        raise MedsegError(str(exc.args[0]), hint=f"see `medseg models show {base}`") from exc
    src = Path(file)
    if not src.is_file():
        raise MedsegError("file not found", path=src)
    reason = _sniff(src)
    if reason:
        raise MedsegError(reason, path=src, hint=f"download it again{' from ' + entry.url if entry.url else ''}")
    if not entry.sha256:  # nothing published to compare with: the file must at least fit the architecture
        verify_architecture(f"{base}.{entry.tag}", src, entry.format)
    digest = sha256_file(src)
    if entry.sha256 and digest != entry.sha256:
        raise MedsegError(f"sha256 mismatch for {base}.{entry.tag}: expected {entry.sha256}, found {digest}",
                          path=src, hint="this is not the published file (or it is corrupt); download it again")
    dest = import_dir(weights_dir) / entry.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    if not entry.sha256:
        atomic_write_text(dest.with_name(dest.name + SIDECAR), f"{digest}  {entry.file}\n")
    logger.info("imported %s.%s -> %s", base, entry.tag, dest)
    return dest, digest
