"""Calibration windows for INT8 post-training quantisation: a handful of training scans, preprocessed as
the model expects and cut into network windows.

A :class:`CalibrationSet` has a ``key`` (sha256 over what the windows depend on: the scans' bytes, the
preprocessing and the window recipe) that is part of the INT8 cache key, and builds its windows only when
a quantised model has to be (re)built, so a cache hit reads no scan. For a model trained here the default
set is taken from its *training* split (never its validation cases): :func:`training_cases`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)

RECIPE_VERSION = 1          # bump when the way windows are cut changes
DEFAULT_CASES = 8           # "a handful": enough for stable activation ranges on the shipped model
WINDOWS_PER_CASE = 4        # evenly spread over each scan's sliding-window grid
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class CalibrationSet:
    """Windows ``(1, C, *roi)`` float32 for NNCF, built lazily; ``key`` names their content."""

    key: str
    source: str                                   # one line for logs and the sidecar
    build_windows: Callable[[], list[np.ndarray]]

    def windows(self) -> list[np.ndarray]:
        windows = self.build_windows()
        if not windows:
            raise MedsegError(f"no calibration windows from {self.source}",
                              hint="pass --calibration with a few scans the model was trained on")
        return windows


def from_arrays(windows: Sequence[np.ndarray], source: str = "arrays") -> CalibrationSet:
    """A set from ready windows (tests, notebooks): the key is the sha256 of their bytes."""
    arrays = [np.ascontiguousarray(w, dtype=np.float32) for w in windows]
    digest = hashlib.sha256(f"arrays|{RECIPE_VERSION}".encode())
    for a in arrays:
        digest.update(f"{a.shape}".encode())
        digest.update(a.tobytes())
    return CalibrationSet(digest.hexdigest(), f"{len(arrays)} {source}", lambda: list(arrays))


def image_files(path: str | PathLike) -> list[Path]:
    """The scans under ``path``: a file, a folder of images, or a dataset folder with ``imagesTr/``."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if (p / "imagesTr").is_dir():
        p = p / "imagesTr"
    files = sorted(f for f in p.glob("*") if f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES)) \
        if p.is_dir() else []
    if not files:
        raise MedsegError("no calibration scans found", path=p,
                          hint="pass --calibration FOLDER with a few training scans (NIfTI/NRRD/MHA)")
    return files


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[int(round(i * (len(items) - 1) / (count - 1)))] for i in range(count)] if count > 1 \
        else [items[len(items) // 2]]


def from_files(files: Sequence[str | PathLike], card: Any, *, count: int = DEFAULT_CASES,
               windows_per_case: int = WINDOWS_PER_CASE, source: str | None = None) -> CalibrationSet:
    """A set from scans, preprocessed with ``card`` (orientation, spacing, intensity) like prediction.

    At most ``count`` scans (spread over the list) and ``windows_per_case`` windows of each; the key
    covers the scans' sha256, the preprocessing fields of the card and these two numbers."""
    from medseg.core.hashing import sha256_file

    chosen = [Path(f) for f in spread(list(files), count)]
    recipe = {"version": RECIPE_VERSION, "windows_per_case": windows_per_case, "roi": list(card.roi_size),
              "spacing": list(card.spacing or ()), "orientation": card.orientation,
              "intensity": repr(card.intensity), "in_channels": card.in_channels}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
    for f in chosen:
        digest.update(f"{f.name}|{sha256_file(f)}\n".encode())
    label = source or f"{len(chosen)} scans from {chosen[0].parent}" if chosen else "no scans"
    return CalibrationSet(digest.hexdigest(), label,
                          lambda: _windows(chosen, card, windows_per_case))


def _windows(files: Sequence[Path], card: Any, per_case: int) -> list[np.ndarray]:
    import torch

    from medseg.inference.sliding_window import pad_to_roi
    from medseg.inference.windows import WindowGrid
    from medseg.io import read_image
    from medseg.transforms import build_preprocessing

    roi = tuple(int(r) for r in card.roi_size)
    pre = build_preprocessing(card)
    out: list[np.ndarray] = []
    for f in files:
        image = read_image(f)
        if image.ndim == 3:
            image = image[None]
        x = torch.as_tensor(pre({"image": image})["image"], dtype=torch.float32)
        padded, _ = pad_to_roi(x, roi)
        grid = WindowGrid.plan(tuple(padded.shape[1:]), roi, 0.5, None)
        for start in spread(list(grid.windows), per_case):
            window = padded[(slice(None), *(slice(s, s + r) for s, r in zip(start, roi)))]
            out.append(np.ascontiguousarray(window[None].numpy(), dtype=np.float32))
    logger.info("calibration: %d windows from %d scans", len(out), len(files))
    return out


def training_cases(weights_file: str | PathLike | None, *, root: str | PathLike | None = None) -> list[Path]:
    """The training-split scans of a model trained here, from the recipe stored next to its weights
    (``<weights>.json``: ``recipe.data``), split exactly as training did (validation cases left out).

    Empty when the weights have no recipe or its dataset is not on this machine. Relative dataset paths
    are tried from ``root`` (default: the working directory), then from each folder above the weights file
    (a recipe's paths are relative to where training ran, usually above its output)."""
    if not weights_file:
        return []
    meta = Path(f"{weights_file}.json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))["recipe"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    bases = [Path(root) if root else Path.cwd(), *Path(weights_file).resolve().parents]  # where training ran
    dataset = next((b / data["dataset"] for b in bases if data.get("dataset") and (b / data["dataset"]).exists()),
                   None)
    if dataset is None:
        return []
    from medseg.training.datalist import load_dataset
    from medseg.training.prepare import split_cases

    cases = load_dataset(dataset).cases
    fields = {"val_cases": [], "val_fraction": 0.2, "train_cases": [], "max_train_cases": 0}
    fields.update({k: data[k] for k in fields if k in data})
    train, _ = split_cases([c["case"] for c in cases], SimpleNamespace(data=SimpleNamespace(**fields)))
    by_name = {c["case"]: c for c in cases}
    return [Path(by_name[n]["image"]) for n in train if isinstance(by_name[n].get("image"), (str, PathLike))]
