"""Read an nnU-Net v2 trained-model folder: plans, dataset, fingerprint, configuration and folds.

A result folder is ``<Trainer>__<Plans>__<configuration>/`` with ``plans.json``, ``dataset.json``,
``dataset_fingerprint.json`` (optional at inference) and ``fold_k/<checkpoint>`` for each trained fold
(``fold_all`` too). Nothing is unpickled here: checkpoints are only located (see :mod:`.checkpoint`).
"""
from __future__ import annotations

import json
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg.core.errors import MedsegError

REQUIRED = ("plans.json", "dataset.json")
DEFAULT_CHECKPOINT = "checkpoint_final.pth"


def looks_like_folder(path: str | Path) -> bool:
    """True when ``path`` is a directory with ``plans.json`` (or any ``fold_*`` child): worth reading as one."""
    p = Path(path)
    return p.is_dir() and ((p / "plans.json").is_file() or any(p.glob("fold_*")))


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedsegError(f"cannot read JSON ({exc})", path=path) from exc
    if not isinstance(data, dict):
        raise MedsegError("expected a JSON object", path=path)
    return data


def resolve_configuration(plans: dict, name: str, path: Path | None = None) -> dict:
    """The plans entry ``name`` with ``inherits_from`` resolved (child keys override the parent's)."""
    configs = plans.get("configurations", {})
    chain, current = [], name
    while True:
        if current not in configs:
            raise MedsegError(f"configuration {current!r} is not in plans.json", path=path,
                              hint=f"it has: {', '.join(configs) or 'none'}")
        if current in chain:
            raise MedsegError(f"circular inherits_from in plans.json ({' -> '.join(chain + [current])})", path=path)
        chain.append(current)
        parent = configs[current].get("inherits_from")
        if parent is None:
            break
        current = parent
    resolved: dict[str, Any] = {}
    for entry in reversed(chain):
        resolved.update(deepcopy(configs[entry]))
    resolved.pop("inherits_from", None)
    return resolved


@dataclass
class NnUNetFolder:
    """What a result folder holds, read without running anything.

    Attributes:
        path: the folder; trainer, plans_name, configuration: from the folder name (``T__P__C``), the
            configuration confirmed by the checkpoint's ``init_args`` when loaded.
        folds: fold name (``"0"``, ``"all"``) -> checkpoint file, for the checkpoint name asked for.
    """

    path: Path
    plans: dict
    dataset: dict
    fingerprint: dict | None
    trainer: str
    plans_name: str
    configuration: str
    checkpoint_name: str
    folds: dict[str, Path] = field(default_factory=dict)

    @property
    def config(self) -> dict:
        """The resolved plans entry of this folder's configuration."""
        return resolve_configuration(self.plans, self.configuration, self.path / "plans.json")

    @property
    def channel_names(self) -> list[str]:
        names = self.dataset.get("channel_names", self.dataset.get("modality", {}))
        return [str(names[k]) for k in sorted(names, key=lambda k: int(k))]

    @property
    def file_ending(self) -> str:
        return str(self.dataset.get("file_ending", ".nii.gz"))

    def select(self, folds: list[str] | None) -> dict[str, Path]:
        """The fold files to use: ``folds`` (names such as ``"0"``, ``"all"``) or every fold present."""
        if not self.folds:
            raise MedsegError(f"no fold_*/{self.checkpoint_name} in the model folder", path=self.path,
                              hint="pass --checkpoint-name checkpoint_best.pth if only that was saved")
        if folds is None:
            return dict(self.folds)
        missing = [f for f in folds if f not in self.folds]
        if missing:
            raise MedsegError(f"fold {', '.join(missing)} has no {self.checkpoint_name}", path=self.path,
                              hint=f"folds present: {', '.join(self.folds)}")
        return {f: self.folds[f] for f in folds}


def _fold_key(name: str) -> tuple[int, str]:
    tail = name[len("fold_"):]
    return (int(tail), "") if tail.isdigit() else (1 << 30, tail)


def read_folder(path: str | Path, checkpoint_name: str = DEFAULT_CHECKPOINT) -> NnUNetFolder:
    """Read ``path`` as an nnU-Net v2 result folder; raise naming what is missing."""
    p = Path(path)
    if not p.is_dir():
        raise MedsegError("not a folder", path=p, hint="pass an nnU-Net v2 result folder "
                          "(Trainer__Plans__configuration with plans.json, dataset.json and fold_k/)")
    missing = [name for name in REQUIRED if not (p / name).is_file()]
    folds_present = sorted((d for d in p.glob("fold_*") if d.is_dir()), key=lambda d: _fold_key(d.name))
    if missing or not folds_present:
        what = missing + ([] if folds_present else ["fold_*/"])
        raise MedsegError(f"not an nnU-Net v2 result folder: {', '.join(what)} missing", path=p,
                          hint="point --model at Trainer__Plans__configuration inside nnUNet_results/DatasetXXX_Name")
    plans, dataset = _json(p / "plans.json"), _json(p / "dataset.json")
    fingerprint = _json(p / "dataset_fingerprint.json") if (p / "dataset_fingerprint.json").is_file() else None
    for key in ("configurations",):
        if key not in plans:
            raise MedsegError(f"plans.json has no {key!r}", path=p / "plans.json")
    for key in ("labels", "file_ending"):
        if key not in dataset:
            raise MedsegError(f"dataset.json has no {key!r}", path=p / "dataset.json")
    if "channel_names" not in dataset and "modality" not in dataset:
        raise MedsegError("dataset.json has no 'channel_names'", path=p / "dataset.json")
    parts = p.name.split("__")
    trainer, plans_name, configuration = (parts if len(parts) == 3
                                          else ("", plans.get("plans_name", ""), ""))
    if configuration not in plans["configurations"]:
        only = list(plans["configurations"])
        configuration = configuration or (only[0] if len(only) == 1 else "")
    folds = {d.name[len("fold_"):]: d / checkpoint_name for d in folds_present if (d / checkpoint_name).is_file()}
    return NnUNetFolder(p, plans, dataset, fingerprint, trainer, plans_name, configuration, checkpoint_name, folds)
