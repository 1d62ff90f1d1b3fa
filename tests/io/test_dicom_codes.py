"""The label code table: every SNOMED CT code is a real one with its DICOM meaning; unknown names get Tissue."""
from __future__ import annotations

import pytest

from medseg.io.dicom_codes import code_table, segment_code


def test_every_code_in_the_table_is_in_dicoms_snomed_list():
    concepts = pytest.importorskip("pydicom.sr._concepts_dict").concepts["SCT"]  # DICOM PS3.16's SNOMED CT list
    meanings: dict[str, set[str]] = {}
    for entry in concepts.values():
        for value, (meaning, _) in entry.items():
            meanings.setdefault(value, set()).add(meaning.lower())
    table = code_table()
    pairs = [*table["categories"].values(), *table["modifiers"].values(), table["generic"]["type"],
             *(entry["type"] for entry in table["labels"].values())]
    for value, meaning in pairs:
        assert meaning.lower() in meanings.get(value, set()), (value, meaning)
    for aliases in table["models"].values():
        assert set(aliases.values()) <= set(table["labels"])


def test_known_names_laterality_model_aliases_and_fallback():
    kidney = segment_code("Kidney Left", 3)
    assert kidney.type[2] == "Kidney" and kidney.modifier[2] == "Left" and kidney.known
    assert segment_code("anterior", 1, "stunet_t.hippocampus").type[2] == "Hippocampus"
    other = segment_code("anterior", 1)  # no model: an unknown name
    assert not other.known and other.type[2] == "Tissue" and other.category[2] == "Tissue"
    assert segment_code("x", 1).color != segment_code("y", 2).color
