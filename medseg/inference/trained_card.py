"""The card a training run saved with its weights, so ``--checkpoint`` predicts with what was trained.

``medseg train`` stores the final card and the recipe in every checkpoint (``best.pt``/``last.pt``) and
``--export`` writes them to ``FILE.json`` beside the safetensors file. The registry's card may differ from
it: a planned spacing and window, other labels or channels, or a SAUNA soft-label head (one tanh output
per foreground class, ``activation = "regression"``). :func:`trained_overrides` returns the keywords that
rebuild the trained model with :func:`medseg.models.create_model` (the same fields as
``medseg.training.prepare.build_model_for``); a plain weights file yields none.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from medseg.core.card import Intensity
from medseg.core.errors import MedsegError
from medseg.models._checkpoint import load_checkpoint

CARD_FIELDS = ("in_channels", "channel_names", "out_channels", "labels", "roi_size", "spacing", "intensity",
               "activation", "postprocess", "quality")
_TUPLES = ("channel_names", "labels", "roi_size", "spacing")


def saved_training_state(path: str | PathLike) -> Mapping[str, Any] | None:
    """``{"card": ..., "recipe": ...}`` saved with a training checkpoint or its export JSON, else None."""
    p = Path(path)
    sidecar = p.with_name(p.name + ".json")
    if p.suffix == ".safetensors":
        if not sidecar.is_file():
            return None
        try:
            state = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MedsegError(f"cannot read the export summary ({exc})", path=sidecar) from exc
    else:
        state = load_checkpoint(p)
    if not isinstance(state, Mapping) or not isinstance(state.get("card"), Mapping):
        return None
    return state


def trained_overrides(path: str | PathLike, model_name: str) -> dict[str, Any]:
    """``create_model`` keywords (card fields + the recipe's builder options) of the run that wrote ``path``."""
    state = saved_training_state(path)
    if state is None:
        return {}
    card = state["card"]
    trained_for = str(card.get("name", model_name))
    if trained_for != model_name:
        raise MedsegError(f"the checkpoint was trained for model {trained_for!r}, not {model_name!r}",
                          path=path, hint=f"use --model {trained_for}")
    overrides: dict[str, Any] = {}
    recipe = state.get("recipe")
    if isinstance(recipe, Mapping) and isinstance(recipe.get("model"), Mapping):
        overrides.update(dict(recipe["model"].get("overrides") or {}))
    for key in CARD_FIELDS:
        if key not in card:
            continue
        value = card[key]
        if key in _TUPLES and value is not None:
            value = tuple(value)
        elif key == "intensity" and isinstance(value, Mapping):
            value = Intensity(**dict(value))
        overrides[key] = value
    return overrides
