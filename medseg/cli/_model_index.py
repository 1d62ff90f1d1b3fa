"""A light index of the zoo (one JSON file) so ``medseg models list`` answers without importing torch.

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

    path = package_data(INDEX)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(build_index(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_index()
