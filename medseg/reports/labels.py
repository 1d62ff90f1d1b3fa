"""Label names (from a dataset.json, a model card's label tuple or the label files themselves) and the
``--labels`` selection."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)


def names_from_dataset_json(path: str | PathLike) -> dict[int, str]:
    """``{value: name}`` from an MSD (``{"1": "liver"}``) or nnU-Net v2 (``{"liver": 1}``) dataset.json.

    nnU-Net region entries (``{"tumour": [1, 2]}``) are not single labels; they are skipped with a warning.
    """
    p = Path(path)
    if not p.is_file():
        raise MedsegError("dataset.json not found", path=p, hint="check the path given to --dataset-json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedsegError(f"is not valid JSON ({exc})", path=p) from exc
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise MedsegError("has no 'labels' mapping", path=p,
                          hint='expected e.g. "labels": {"0": "background", "1": "liver"}')
    names: dict[int, str] = {}
    for key, value in labels.items():
        if isinstance(value, str) and _is_int(key):  # MSD: value -> name
            names[int(key)] = value
        elif isinstance(value, int) and not isinstance(value, bool):  # nnU-Net v2: name -> value
            names[value] = str(key)
        elif isinstance(value, list):
            logger.warning("%s: region %r (labels %s) is not a single label and is not evaluated", p, key, value)
        else:
            raise MedsegError(f"cannot read label entry {key!r}: {value!r}", path=p)
    return names


def embedded_label_names(path: str | PathLike) -> dict[int, str]:
    """``{value: name}`` stored in a NIfTI file: medseg's JSON extension (``{"labels": {"1": "liver"}}``) or
    a CIFTI/Caret label table (TotalSegmentator's files); ``{}`` when there is none."""
    p = Path(path)
    if not p.name.endswith((".nii", ".nii.gz")):
        return {}
    try:
        import nibabel as nib

        extensions = nib.load(p).header.extensions
    except Exception:  # noqa: BLE001  (names are a nicety; the reader already reported real problems)
        return {}
    names: dict[int, str] = {}
    for extension in extensions:
        content = extension.get_content()
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        names.update(_names_from_json(text) or _names_from_caret_xml(text))
    names.pop(0, None)
    return names


def _names_from_json(text: str) -> dict[int, str]:
    try:
        data = json.loads(text.strip().rstrip("\x00"))
    except ValueError:
        return {}
    labels = data.get("labels") if isinstance(data, dict) else None
    if isinstance(labels, list):
        return {i: str(n) for i, n in enumerate(labels)}
    if isinstance(labels, dict):
        return {int(k): str(v) for k, v in labels.items() if str(k).lstrip("-").isdigit()}
    return {}


def _names_from_caret_xml(text: str) -> dict[int, str]:
    found = re.findall(r'<Label\s+Key="(\d+)"[^>]*>\s*(?:<!\[CDATA\[)?([^<\]]+?)(?:\]\]>)?\s*</Label>', text)
    return {int(key): name.strip() for key, name in found}


def names_from_card_labels(labels: Sequence[str]) -> dict[int, str]:
    """``{index: name}`` from a model card's ``labels`` tuple (index == label value for softmax models)."""
    return {i: str(name) for i, name in enumerate(labels)}


def label_name(value: int, names: Mapping[int, str]) -> str:
    """The known name of a label value, or ``label_<value>``."""
    return names.get(value) or f"label_{value}"


def parse_labels(text: str | Sequence[int | str] | None, names: Mapping[int, str]) -> list[int] | None:
    """Label values from ``"1,2"``, ``"liver,spleen"`` (names looked up case-insensitively) or a list."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    by_name = {name.lower(): value for value, name in names.items()}
    values: list[int] = []
    for item in items:
        if isinstance(item, int) or (isinstance(item, str) and _is_int(item)):
            value = int(item)
        elif isinstance(item, str) and item and item.lower() in by_name:
            value = by_name[item.lower()]
        else:
            known = ", ".join(f"{v}={n}" for v, n in sorted(names.items()))
            hint = f"known labels: {known}" if known else "give numbers, or names with --dataset-json or --model"
            raise MedsegError(f"unknown label {item!r} in --labels", hint=hint)
        if value <= 0:
            raise MedsegError(f"label {item!r} is background (0); evaluate foreground labels only")
        if value not in values:
            values.append(value)
    if not values:
        raise MedsegError("--labels is empty", hint="e.g. --labels 1,2 or --labels liver,spleen")
    return values


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 case``, ``2 cases``."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
