"""The shipped model index and cards (read by `medseg models list/show` without torch) match the registry."""
from __future__ import annotations

import json

from medseg.cli._model_index import CARDS, build_cards, build_index, read_card, read_index
from medseg.core.resources import package_data


def test_index_and_cards_match_registry():
    # stale after adding/changing a model: regenerate with `python -m medseg.cli._model_index`
    rows = build_index()
    assert read_index() == rows
    assert json.loads(package_data(CARDS).read_text(encoding="utf-8")) == build_cards(rows)


def test_index_filters_by_glob():
    names = [r["name"] for r in read_index("swin*")]
    assert names and all(n.startswith("swin") for n in names)


def test_a_pretrained_tag_shows_its_own_card():
    base, tagged = read_card("stunet_t"), read_card("stunet_t.hippocampus")
    assert tagged["field_of_view_mm"] != base["field_of_view_mm"]   # the tag's overrides are applied
    assert tagged["params"] == base["params"] > 0
    assert read_card("no_such_model") is None   # `models show` then asks the registry (user-registered models)
