"""Training data lists: the MSD / nnU-Net raw layout (``dataset.json``, ``imagesTr/``, ``labelsTr/``) or a
plain CSV/JSON list of image/label pairs."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError
from medseg.io.formats import ALL, case_name, split_ext


@dataclass
class Dataset:
    """Image/label pairs plus the label names (index == label value) and channel names."""

    cases: list[dict]
    labels: dict[int, str]
    channel_names: tuple[str, ...] = ("image",)
    root: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label_names(self) -> tuple[str, ...]:
        top = max(self.labels) if self.labels else 0
        return tuple(self.labels.get(i, f"class_{i}") for i in range(top + 1))


def load_dataset(source: str | PathLike) -> Dataset:
    """Load a dataset from an MSD/nnU-Net folder, a ``dataset.json``, or a CSV/JSON pair list."""
    src = Path(source)
    if not src.exists():
        raise MedsegError("dataset not found", path=src, hint="give a folder with dataset.json or a CSV list")
    if src.is_dir():
        if (src / "dataset.json").is_file():
            return _from_dataset_json(src / "dataset.json")
        if (src / "imagesTr").is_dir():
            return _from_folders(src)
        raise MedsegError("is neither an MSD/nnU-Net dataset nor a CSV list", path=src,
                          hint="expected dataset.json or imagesTr/ + labelsTr/")
    if src.suffix == ".csv":
        return _from_csv(src)
    if src.suffix == ".json":
        data = json.loads(src.read_text(encoding="utf-8"))
        return _from_dataset_json(src) if isinstance(data, dict) else _from_pairs(data, src.parent, src)
    raise MedsegError("unknown dataset file type", path=src, hint="use a folder, dataset.json or a .csv list")


def _labels_from(meta: dict) -> dict[int, str]:
    raw = meta.get("labels", {})
    if not raw:
        return {}
    first_key = next(iter(raw))
    if str(first_key).lstrip("-").isdigit():   # MSD: {"0": "background"}
        return {int(k): str(v) for k, v in raw.items()}
    return {int(v): str(k) for k, v in raw.items()}  # nnU-Net v2: {"background": 0}


def _from_dataset_json(path: Path) -> Dataset:
    root = path.parent
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MedsegError(f"invalid JSON ({exc})", path=path) from exc
    modality = meta.get("modality") or meta.get("channel_names") or {"0": "image"}
    channels = tuple(str(modality[k]) for k in sorted(modality, key=lambda k: int(k)))
    if "training" in meta:
        cases = [{"image": _resolve(root, c["image"]), "label": _resolve(root, c["label"])} for c in meta["training"]]
        for case in cases:
            case["case"] = case_name(case["image"])
    else:
        cases = _from_folders(root).cases
    return Dataset(cases=cases, labels=_labels_from(meta), channel_names=channels, root=root, extra=meta)


def _resolve(root: Path, rel: str) -> Path:
    return (root / rel).resolve() if not Path(rel).is_absolute() else Path(rel)


def _from_folders(root: Path) -> Dataset:
    images = sorted(p for p in (root / "imagesTr").iterdir() if split_ext(p)[1] in ALL)
    cases = []
    for image in images:
        stem, ext = split_ext(image)
        label_stem = stem.removesuffix("_0000")   # nnU-Net channel suffix
        cases.append({"image": image, "label": root / "labelsTr" / f"{label_stem}{ext}", "case": label_stem})
    return Dataset(cases=cases, labels={}, root=root)


def _from_csv(path: Path) -> Dataset:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return _from_pairs(rows, path.parent, path)


def _from_pairs(rows: list[dict], root: Path, source: Path) -> Dataset:
    cases = []
    for i, row in enumerate(rows):
        if "image" not in row or "label" not in row:
            raise MedsegError(f"row {i + 1} needs 'image' and 'label' columns", path=source)
        image = _resolve(root, row["image"])
        cases.append({"image": image, "label": _resolve(root, row["label"]), "case": case_name(image)})
    return Dataset(cases=cases, labels={}, root=root)
