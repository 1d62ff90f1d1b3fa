"""Resolve ``--model``: a registry name (with or without ``.tag``), a checkpoint, or a ready nn.Module."""
from __future__ import annotations

from os import PathLike
from pathlib import Path

from torch import nn

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.inference.prediction import ModelInfo
from medseg.inference.trained_card import trained_overrides
from medseg.models import create_model, get_entry, list_models
from medseg.models._registry import card_of, split_name
from medseg.models.weights import find_weights, search_dirs

DEFAULT_MODEL = "stunet_t.hippocampus"


def default_model_name(weights_dir: str | PathLike | None = None) -> str:
    """The shipped model (``stunet_t.hippocampus``) or else the first pretrained model with local weights."""
    candidates = list_models(pretrained=True)
    ordered = sorted(candidates, key=lambda name: name != DEFAULT_MODEL)
    for name in ordered:
        base, tag = split_name(name)
        if find_weights(get_entry(base).card.get_pretrained(tag).file, weights_dir) is not None:
            return name
    where = ", ".join(str(d) for d in search_dirs(weights_dir))
    raise MedsegError(
        "no model was given and no pretrained weights were found locally",
        hint=f"pass --model NAME.TAG (see `medseg models list`) and put its weights in one of: {where}",
    )


def load_model(
    model: str | nn.Module | None = None,
    *,
    weights_dir: str | PathLike | None = None,
    checkpoint: str | PathLike | None = None,
) -> tuple[nn.Module, ModelCard, ModelInfo]:
    """Build the network with weights and return it with its card and provenance.

    Args:
        model: ``"name.tag"`` (registry weights), ``"name"`` (its first tag, or ``checkpoint``),
            an ``nn.Module`` with a ``.card``, or None for :func:`default_model_name`.
        weights_dir: extra folder searched for weight files.
        checkpoint: a weights file for ``"name"`` (e.g. your own training run); the card saved with it
            by ``medseg train`` (spacing, window, labels, a SAUNA head) is used when present.
    """
    if isinstance(model, nn.Module):
        card = getattr(model, "card", None)
        if not isinstance(card, ModelCard):
            raise MedsegError("the model has no .card (a ModelCard)",
                              hint="create it with medseg.create_model, or set model.card = ModelCard(...)")
        return model, card, ModelInfo(name=card.name)
    name = model or default_model_name(weights_dir)
    base, tag = split_name(name)
    entry = get_entry(base)
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise MedsegError("checkpoint not found", path=path)
        net = create_model(base, pretrained=str(path), **trained_overrides(path, base))
        return net, card_of(net), ModelInfo(base, None, sha256_file(path), str(path))
    if tag is None:
        if not entry.card.pretrained:
            raise MedsegError(
                f"model {base!r} has no pretrained weights",
                hint="pass --checkpoint FILE with your trained weights, or a NAME.TAG from `medseg models list`",
            )
        tag = entry.card.pretrained[0].tag
    net = create_model(f"{base}.{tag}", weights_dir=weights_dir)
    weights = entry.card.get_pretrained(tag)
    found = find_weights(weights.file, weights_dir)
    return net, card_of(net), ModelInfo(base, tag, weights.sha256, str(found) if found else weights.file)
