"""The model registry: a decorator in each model's file registers its builder and card (timm-style).

``create_model("stunet_s")`` builds an untrained network; ``create_model("stunet_s.hippocampus")`` or
``pretrained="hippocampus"`` also loads the sha256-checked local weights of that tag.
"""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

from torch import nn

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its card and the function that builds it from the card."""

    card: ModelCard
    builder: Builder
    module: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(card: ModelCard) -> Callable[[Builder], Builder]:
    """Register ``builder(card, **kwargs) -> nn.Module`` under ``card.name``. Duplicate names are an error."""

    def decorator(builder: Builder) -> Builder:
        if card.name in _REGISTRY:
            raise ValueError(f"model {card.name!r} is already registered by {_REGISTRY[card.name].module}")
        _REGISTRY[card.name] = ModelEntry(card=card, builder=builder, module=builder.__module__)
        return builder

    return decorator


def split_name(name: str) -> tuple[str, str | None]:
    """``"stunet_s.hippocampus"`` -> ``("stunet_s", "hippocampus")``."""
    base, _, tag = name.partition(".")
    return base, (tag or None)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for a model name (a ``.tag`` suffix is ignored); unknown names get a suggestion."""
    base, _ = split_name(name)
    if base not in _REGISTRY:
        close = difflib.get_close_matches(base, list(_REGISTRY), n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see `medseg models list`"
        raise MedsegError(f"unknown model {base!r}", hint=hint)
    return _REGISTRY[base]


def get_card(name: str) -> ModelCard:
    """The model card, with the pretrained entry's overrides applied when ``name`` has a ``.tag``."""
    base, tag = split_name(name)
    entry = get_entry(base)
    if tag is None:
        return entry.card
    try:
        weights = entry.card.get_pretrained(tag)
    except KeyError as exc:
        raise MedsegError(str(exc.args[0]), hint="see `medseg models show " + base + "`") from exc
    return entry.card.replace(**dict(weights.card)) if weights.card else entry.card


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Sorted model names matching a glob; with ``pretrained=True``, ``name.tag`` for each weight entry."""
    names = sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))
    if not pretrained:
        return names
    return [f"{n}.{p.tag}" for n in names for p in _REGISTRY[n].card.pretrained]


def create_model(
    name: str,
    pretrained: bool | str | PathLike | None = None,
    *,
    weights_dir: str | PathLike | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally with pretrained weights.

    Args:
        name: ``"model"`` or ``"model.tag"`` (the tag selects weights, as in timm).
        pretrained: ``None``/``False`` for random init (unless ``name`` has a tag); ``True`` for the
            first tag; a tag string; or a path to a checkpoint file to load.
        weights_dir: where weight files are looked up first (see :func:`medseg.models.weights.find_weights`).
        **overrides: card fields (``out_channels``, ``labels``, ``in_channels``...) or builder keywords.

    The returned module has a ``.card`` attribute describing it.
    """
    from medseg.models import weights as _weights

    base, tag = split_name(name)
    entry = get_entry(base)
    if pretrained is True:
        tag = entry.card.get_pretrained(None).tag if entry.card.pretrained else None
        if tag is None:
            raise MedsegError(f"model {base!r} has no pretrained weights", hint="see `medseg models list`")
    elif isinstance(pretrained, str) and not _looks_like_path(pretrained):
        tag = pretrained
    card = get_card(f"{base}.{tag}" if tag else base)
    arch_kwargs: dict[str, Any] = dict(card.get_pretrained(tag).arch) if tag else {}
    card_fields = {f for f in card.__dataclass_fields__}
    card_changes = {k: v for k, v in overrides.items() if k in card_fields}
    arch_kwargs.update({k: v for k, v in overrides.items() if k not in card_fields})
    if card_changes:
        if "out_channels" in card_changes and "labels" not in card_changes:
            card_changes["labels"] = ("background",) + tuple(
                f"class_{i}" for i in range(1, card_changes["out_channels"])
            )
        if "in_channels" in card_changes and "channel_names" not in card_changes:
            card_changes["channel_names"] = tuple(f"channel_{i}" for i in range(card_changes["in_channels"]))
        card = card.replace(**card_changes)
    model = entry.builder(card, **arch_kwargs)
    model.card = card
    if tag:
        _weights.load_pretrained(model, card, tag, weights_dir=weights_dir)
    elif pretrained not in (None, False):
        _weights.load_checkpoint_file(model, pretrained)
    return model


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".pt", ".pth", ".safetensors", ".model", ".ckpt"))
