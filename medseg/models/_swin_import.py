"""Import released Swin UNETR weights into MONAI's ``SwinUNETR`` (wrapped by :mod:`medseg.models.swin_unetr`).

Two kinds of files:

- **Self-supervised encoder** ``model_swinvit.pt`` (MONAI-extra-test-data 0.8.1): ``{"state_dict": ...}``
  with ``module.patch_embed.proj.*``, ``module.layers{1..4}.0.blocks.{0,1}.{norm1, attn.*, norm2,
  mlp.fc1, mlp.fc2}.*``, ``module.layers{i}.0.downsample.{reduction, norm}.*`` plus pre-text extras
  (``module.norm.*``, rotation/contrastive heads). Mapped explicitly: strip ``module.``, prefix
  ``swinViT.``, ``mlp.fc1/fc2`` -> ``mlp.linear1/linear2``; extras are reported unused. Checkpoints
  saved from the pre-training code's ``SSLHead`` (``swinViT.*``), with ``swin_vit.*`` naming, and the
  Disruptive-Autoencoder file (``{"model": {"encoder.layers1.0.0.blocks...}}``) map the same way.
  Unlike a silent ``load_state_dict(strict=False)`` (research-contributions issue #268), every encoder
  tensor must be found with the right shape.
- **Full networks** (BTCV / BraTS releases ``{"epoch", "best_acc", "state_dict", ...}``, MONAI bundle
  ``models/model.pt``): MONAI names already; only ``module.`` / ``swin_vit`` are normalised.

The 2022 releases were trained with MONAI < 1.5's patch-merging order: build the model with
``legacy_patch_merging=True`` to reproduce their numbers (the pretrained cards do).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike

import torch
from torch import nn

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models._adapt import (
    LoadReport,
    apply_state,
    match_state_dict,
    raise_for_report,
)
from medseg.models._checkpoint import extract_state_dict, load_checkpoint, strip_key

logger = get_logger(__name__)

_ENCODER_BODY = re.compile(r"^(patch_embed\.|layers[1-4]\.0\.(blocks|downsample)\.)")
_DAE_LAYER = re.compile(r"^encoder\.(layers[1-4])\.0\.0\.")


def _encoder_key(key: str) -> str | None:
    """Our ``swinViT.*`` name for one encoder key of any known SSL file, or None for extras."""
    key = key.replace("swin_vit.", "swinViT.")
    if key.startswith("encoder."):  # Disruptive-Autoencoder naming
        if key.startswith("encoder.patch_embed."):
            key = "swinViT." + key[len("encoder."):]
        elif _DAE_LAYER.match(key):
            key = _DAE_LAYER.sub(lambda m: f"swinViT.{m.group(1)}.0.", key)
        else:
            return None
    elif _ENCODER_BODY.match(key):
        key = "swinViT." + key
    if not key.startswith("swinViT.") or not _ENCODER_BODY.match(key[len("swinViT."):]):
        return None
    return key.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2.")


def map_ssl_encoder_keys(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map an SSL checkpoint's keys to ours; returns (mapped tensors, file keys with no place)."""
    mapped, dropped = {}, []
    for key, value in state.items():
        ours = _encoder_key(strip_key(key))
        if ours is None:
            dropped.append(key)
        else:
            mapped[ours] = value
    return mapped, dropped


def _read(path: str | PathLike) -> dict[str, torch.Tensor]:
    return extract_state_dict(load_checkpoint(path), path=path)


def _warn_if_modern(model: nn.Module, path: str | PathLike) -> None:
    if not getattr(model, "legacy_patch_merging", True):
        logger.warning("%s was trained with MONAI<1.5 patch merging; build the model with "
                       "legacy_patch_merging=True to reproduce its published results", path)


def load_swin_ssl_encoder(model: nn.Module, path: str | PathLike, *, tile_input_channels: bool = False) -> LoadReport:
    """Load the self-supervised Swin encoder (``swinViT.*``) from ``path``; the CNN decoder stays as is.

    Raises :class:`MedsegError` when an encoder tensor is absent or has another shape (the released
    encoder needs ``feature_size=48`` and one input channel, or ``tile_input_channels=True``).
    """
    mapped, dropped = map_ssl_encoder_keys(_read(path))
    if not mapped:
        raise MedsegError("no Swin encoder tensors found (expected module.patch_embed..., module.layers1.0...)",
                          path=path, hint="this is not a Swin UNETR self-supervised checkpoint")
    decoder = tuple(f"{name}." for name, _ in model.named_children() if name != "swinViT")
    stems = ("swinViT.patch_embed.proj.weight",) if tile_input_channels else ()
    tensors, report = match_state_dict(mapped, model, tile_keys=stems, allow_missing_prefixes=decoder)
    report.unused = sorted(set(report.unused) | set(dropped))
    report.source = str(path)
    raise_for_report(report, what="the Swin UNETR encoder", source=path,
                     hint="the released encoder fits feature_size=48 and in_channels=1 "
                          "(use tile_input_channels=True for more input channels)")
    apply_state(model, tensors)
    _warn_if_modern(model, path)
    logger.info("loaded Swin encoder from %s: %s", path, report.summary())
    return report


def load_monai_checkpoint(
    model: nn.Module,
    path: str | PathLike,
    *,
    reinit_heads: bool = False,
    tile_input_channels: bool = False,
) -> LoadReport:
    """Load a full MONAI-named checkpoint (BTCV/BraTS release, bundle ``model.pt``) strictly.

    ``reinit_heads`` keeps a fresh output layer (new label set); ``tile_input_channels`` repeats the stem
    weights when the model has more input channels than the file.
    """
    state = {strip_key(k).replace("swin_vit.", "swinViT."): v for k, v in _read(path).items()}
    own = model.state_dict()
    if not set(state) & set(own):
        encoder, _ = map_ssl_encoder_keys(state)
        hint = ("this is a self-supervised encoder file: load it with load_swin_ssl_encoder / the 'ssl' tag"
                if encoder else "this checkpoint belongs to another architecture")
        raise MedsegError(f"no tensor of {type(model).__name__} found in the file (e.g. {', '.join(list(state)[:3])})",
                          path=path, hint=hint)
    heads = tuple(getattr(model, "head_prefixes", ())) if reinit_heads else ()
    stems = tuple(getattr(model, "stem_keys", ())) if tile_input_channels else ()
    tensors, report = match_state_dict(state, model, reinit_prefixes=heads, tile_keys=stems)
    report.source = str(path)
    raise_for_report(report, what=type(model).__name__, source=path)
    apply_state(model, tensors)
    _warn_if_modern(model, path)
    logger.info("loaded %s: %s", path, report.summary())
    return report
