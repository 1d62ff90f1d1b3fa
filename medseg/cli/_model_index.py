"""A light index of the zoo (two JSON files) so ``medseg models list`` and ``models show`` answer without torch.

The cards live next to their builders (which import torch); the index holds what ``models list`` shows,
parameter counts included (those need the built network). Regenerate it after adding or changing a model:
``python -m medseg.cli._model_index``; ``tests/cli/test_model_index.py`` fails while it is stale.
It lives in the CLI package because ``medseg.models`` itself imports torch on import.
"""
from __future__ import annotations

import fnmatch
import json
from typing import Any

INDEX = "models_index.json"  # in medseg/data
CARDS = "models_cards.json"  # in medseg/data: what ``models show`` prints, per model and per NAME.TAG


def summary(name: str) -> dict[str, Any]:
    """One row of ``models list`` built from the registry (imports the zoo, so torch)."""
    from medseg.core.errors import MedsegError
    from medseg.models import count_parameters, get_card

    card = get_card(name)
    try:
        params: int | None = count_parameters(name)
    except MedsegError:  # e.g. an optional dependency is missing
        params = None
    return {"name": name, "dims": card.spatial_dims, "in_channels": card.in_channels,
            "out_channels": card.out_channels, "activation": card.activation, "params": params,
            "pretrained": [p.tag for p in card.pretrained], "description": card.description}


def build_index() -> list[dict[str, Any]]:
    """The row of every model medseg ships (registered in ``medseg.models``; not ones that tests or user code
    register at run time), sorted by name."""
    from medseg.models import get_entry, list_models

    return [summary(n) for n in list_models() if get_entry(n).module.startswith("medseg.models.")]


def card_view(name: str, params: int | None | str = "count") -> dict[str, Any]:
    """What ``medseg models show NAME[.TAG]`` prints: the card, parameter count and builder options (imports
    the zoo, so torch), JSON-normalised as the shipped file holds it."""
    import inspect

    from medseg.models import get_card, get_entry
    from medseg.models._registry import split_name

    info = get_card(name).to_dict()
    info["params"] = summary(split_name(name)[0])["params"] if params == "count" else params
    options = list(inspect.signature(get_entry(name).builder).parameters.values())[1:]
    info["builder_options"] = {p.name: repr(p.default) for p in options}
    return json.loads(json.dumps(info, default=str))


def build_cards(rows: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """``card_view`` of every shipped model and of each of its pretrained tags (``rows``: :func:`build_index`'s,
    to reuse its parameter counts)."""
    from medseg.models import list_models

    params = {r["name"]: r["params"] for r in (rows if rows is not None else build_index())}
    tagged = [n for n in list_models(pretrained=True) if n.split(".")[0] in params]
    return {n: card_view(n, params[n.split(".")[0]]) for n in sorted([*params, *tagged])}


def read_card(name: str) -> dict[str, Any] | None:
    """The shipped ``card_view`` of ``name`` (no torch); None for a model the package does not ship."""
    from medseg.core.resources import package_data

    return json.loads(package_data(CARDS).read_text(encoding="utf-8")).get(name)


def read_index(pattern: str = "*") -> list[dict[str, Any]]:
    """Rows of the shipped index whose names match a glob (no torch)."""
    from medseg.core.resources import package_data

    rows = json.loads(package_data(INDEX).read_text(encoding="utf-8"))
    return [r for r in rows if fnmatch.fnmatch(r["name"], pattern)]


def write_index() -> None:
    """Regenerate the shipped index from the registry."""
    from pathlib import Path

    from medseg.core.atomic import atomic_path
    from medseg.core.resources import package_data

    rows = build_index()
    for name, data in ((INDEX, rows), (CARDS, build_cards(rows))):
        with atomic_path(package_data(name)) as tmp:
            Path(tmp).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_index()
