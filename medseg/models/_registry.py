"""The model registry: a decorator in each model's file registers its builder and card (timm-style).

``create_model("stunet_s")`` builds an untrained network; ``create_model("stunet_s.hippocampus")`` or
``pretrained="hippocampus"`` also loads the sha256-checked local weights of that tag.
"""
from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError

Builder = Callable[..., nn.Module]
CardHook = Callable[[ModelCard, Mapping[str, Any]], ModelCard]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its card, the function that builds it from the card, and test settings.

    ``test_overrides``: ``create_model`` keywords (card fields or builder options) that make the model
    small enough for the CPU contract test (tiny widths, small ROI). ``finalize_card``: recomputes
    derived card fields (e.g. divisibility from a plan) after user overrides.
    """

    card: ModelCard
    builder: Builder
    module: str
    test_overrides: Mapping[str, Any] = field(default_factory=dict)
    finalize_card: CardHook | None = None


_REGISTRY: dict[str, ModelEntry] = {}
_ZOO_IMPORTED = False
_NOT_MODELS = ("weights",)   # modules of medseg.models without ``_`` that register nothing


def _zoo() -> dict[str, ModelEntry]:
    """The registry with the whole zoo in it: every module of :mod:`medseg.models` not starting with ``_``
    registers its models when imported, which happens here on the first look-up (not at package import, so
    ``medseg.models.heads`` and ``._checkpoint`` are usable without importing every network and MONAI)."""
    global _ZOO_IMPORTED
    if not _ZOO_IMPORTED:
        _ZOO_IMPORTED = True   # first: a model module may look up another model while it is imported
        package = __name__.rpartition(".")[0]
        try:
            for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
                if not info.name.startswith("_") and info.name not in _NOT_MODELS:
                    importlib.import_module(f"{package}.{info.name}")
        except BaseException:
            _ZOO_IMPORTED = False
            raise
    return _REGISTRY


def register_model(
    card: ModelCard,
    *,
    test_overrides: Mapping[str, Any] | None = None,
    finalize_card: CardHook | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``builder(card, **kwargs) -> nn.Module`` under ``card.name``. Duplicate names are an error.

    The builder reads everything it needs from the card (channels, classes, ROI, ``deep_supervision``);
    its keyword options are architecture choices (widths, variants) that a pretrained entry may pin.
    """

    def decorator(builder: Builder) -> Builder:
        if card.name in _REGISTRY:
            raise ValueError(f"model {card.name!r} is already registered by {_REGISTRY[card.name].module}")
        final = finalize_card(card, {}) if finalize_card else card
        _REGISTRY[card.name] = ModelEntry(card=final, builder=builder, module=builder.__module__,
                                          test_overrides=dict(test_overrides or {}), finalize_card=finalize_card)
        return builder

    return decorator


def split_name(name: str) -> tuple[str, str | None]:
    """``"stunet_s.hippocampus"`` -> ``("stunet_s", "hippocampus")``."""
    base, _, tag = name.partition(".")
    return base, (tag or None)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for a model name (a ``.tag`` suffix is ignored); unknown names get a suggestion."""
    base, _ = split_name(name)
    if base not in _zoo():
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
    names = sorted(n for n in _zoo() if fnmatch.fnmatch(n, pattern))
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
        **overrides: card fields (``out_channels``, ``labels``, ``in_channels``, ``roi_size``,
            ``deep_supervision`` (bool or count)...) or builder keywords (see ``medseg models show NAME``).

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
    card, arch_kwargs = resolve(f"{base}.{tag}" if tag else base, **overrides)
    model = entry.builder(card, **arch_kwargs)
    model.card = card  # type: ignore[assignment]  # torch types module attributes as Tensor | Module
    if tag:
        _weights.load_pretrained(model, card, tag, weights_dir=weights_dir)
    elif isinstance(pretrained, (str, PathLike)):
        _weights.load_checkpoint_file(model, pretrained)
    return model


def card_of(model: nn.Module) -> ModelCard:
    """The :class:`ModelCard` a zoo model carries as ``.card`` (typed; an error when it has none)."""
    card = getattr(model, "card", None)
    if not isinstance(card, ModelCard):
        raise MedsegError(f"{type(model).__name__} has no .card (a ModelCard)",
                          hint="create it with medseg.create_model, or set model.card = ModelCard(...)")
    return card


def resolve(name: str, **overrides: Any) -> tuple[ModelCard, dict[str, Any]]:
    """The final card and builder keywords for ``name`` (with optional ``.tag``) and user overrides."""
    base, tag = split_name(name)
    entry = get_entry(base)
    card = get_card(name)
    arch_kwargs: dict[str, Any] = dict(card.get_pretrained(tag).arch) if tag else {}
    card_fields = set(card.__dataclass_fields__)
    card_changes = {k: v for k, v in overrides.items() if k in card_fields}
    builder_kwargs = {k: v for k, v in overrides.items() if k not in card_fields}
    _check_builder_kwargs(entry, builder_kwargs, card_fields)
    arch_kwargs.update(builder_kwargs)
    if isinstance(card_changes.get("deep_supervision"), bool):
        card_changes["deep_supervision"] = entry.card.deep_supervision if card_changes["deep_supervision"] else 0
    if card_changes:
        activation = card_changes.get("activation", card.activation)
        if "out_channels" in card_changes and "labels" not in card_changes:
            n = card_changes["out_channels"]
            card_changes["labels"] = (tuple(f"class_{i}" for i in range(1, n + 1)) if activation == "sigmoid"
                                      else ("background",) + tuple(f"class_{i}" for i in range(1, n)))
        regions = card.postprocess.get("label_values")
        if regions and "postprocess" not in card_changes and "labels" in card_changes \
                and set(regions) != set(card_changes["labels"]):   # new outputs: the old regions no longer apply
            card_changes["postprocess"] = {k: v for k, v in card.postprocess.items() if k != "label_values"}
        if "in_channels" in card_changes and "channel_names" not in card_changes:
            card_changes["channel_names"] = tuple(f"channel_{i}" for i in range(card_changes["in_channels"]))
        card = card.replace(**card_changes)
    if entry.finalize_card is not None:
        card = entry.finalize_card(card, arch_kwargs)
    return card, arch_kwargs


def _check_builder_kwargs(entry: ModelEntry, kwargs: Mapping[str, Any], card_fields: set[str]) -> None:
    params = list(inspect.signature(entry.builder).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = {p.name for p in params}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known | card_fields), n=2)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise MedsegError(
            f"{entry.card.name}: unknown option(s) {', '.join(unknown)}",
            hint=hint + f"builder options: {', '.join(sorted(known)) or 'none'}; or any card field",
        )


def count_parameters(name: str, **overrides: Any) -> int:
    """Number of parameters of a model, built on the meta device (instant even for 1.5B parameters)."""
    return sum(p.numel() for p in build_on_meta(name, **overrides).parameters())


def build_on_meta(name: str, **overrides: Any) -> nn.Module:
    """The model with every parameter on the meta device: structure and shapes, no memory, no init cost."""
    entry = get_entry(name)
    card, arch_kwargs = resolve(name, **overrides)
    try:
        with torch.device("meta"):
            model = entry.builder(card, **arch_kwargs)
    except (RuntimeError, NotImplementedError):  # builders that compute values (.item()) while building
        with _parameters_to_meta():
            model = entry.builder(card, **arch_kwargs)
    model.card = card  # type: ignore[assignment]
    return model


@contextlib.contextmanager
def _parameters_to_meta():
    """Move each parameter to the meta device as it is registered (other tensors stay on the CPU)."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".pt", ".pth", ".safetensors", ".model", ".ckpt"))
