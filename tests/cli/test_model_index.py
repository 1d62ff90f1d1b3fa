"""The shipped model index (read by `medseg models list` without torch) matches the registry."""
from __future__ import annotations

from medseg.cli._model_index import build_index, read_index


def test_index_matches_registry():
    # stale after adding/changing a model: regenerate with `python -m medseg.cli._model_index`
    assert read_index() == build_index()


def test_index_filters_by_glob():
    names = [r["name"] for r in read_index("swin*")]
    assert names and all(n.startswith("swin") for n in names)
