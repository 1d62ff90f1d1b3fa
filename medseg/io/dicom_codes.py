"""Coded concepts and display colours for label names, from the table in ``medseg/io/data/segment_codes.json``.

DICOM-SEG segments and RTSTRUCT ROIs carry a coded category and type (SNOMED CT) besides their free-text
name, so a PACS or 3D Slicer knows that label 3 is the liver. The table is data, not code: a label found
there gets its code, laterality modifier and colour; any other label gets the generic "Tissue" code with
its own name and a colour from the palette.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

CodeTuple = tuple[str, str, str]  # (value, scheme designator, meaning)


@dataclass(frozen=True)
class SegmentCode:
    """What a label is, in codes: category, type, optional laterality, and an RGB display colour."""

    category: CodeTuple
    type: CodeTuple
    modifier: CodeTuple | None
    color: tuple[int, int, int]
    known: bool  # False: the generic Tissue fallback


@functools.cache
def code_table() -> dict:
    """The parsed JSON table (cached)."""
    text = resources.files("medseg.io").joinpath("data/segment_codes.json").read_text(encoding="utf-8")
    return json.loads(text)


def _sct(pair: list[str]) -> CodeTuple:
    return (pair[0], "SCT", pair[1])


def _normalise(name: str) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def segment_code(name: str, index: int, model: str | None = None) -> SegmentCode:
    """The codes for label ``name`` (``index`` picks a palette colour for unknown labels).

    ``model`` (e.g. ``stunet_t.hippocampus``) lets the table map a model's own names (``anterior``)
    onto a structure (``hippocampus``).
    """
    table = code_table()
    key = _normalise(name)
    aliases: dict[str, str] = {}
    if model:
        aliases = table["models"].get(model) or table["models"].get(model.split(".")[-1]) or {}
    entry = table["labels"].get(aliases.get(key, key))
    palette = table["palette"]
    if entry is None:
        generic = table["generic"]
        color = palette[(index - 1) % len(palette)]
        return SegmentCode(_sct(table["categories"][generic["category"]]), _sct(generic["type"]), None,
                           tuple(color), known=False)
    modifier = entry.get("modifier")
    return SegmentCode(
        category=_sct(table["categories"][entry["category"]]),
        type=_sct(entry["type"]),
        modifier=_sct(table["modifiers"][modifier]) if modifier else None,
        color=tuple(entry.get("color") or palette[(index - 1) % len(palette)]),
        known=True,
    )
