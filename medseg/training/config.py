"""Training recipes: plain TOML files in ``pipelines/`` mapped onto typed dataclasses.

Unknown sections or keys are an error with a "did you mean"; ``--set section.key=value`` overrides any key.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from medseg.core.errors import MedsegError


@dataclass
class DataConfig:
    dataset: str = ""                  # MSD/nnU-Net folder, dataset.json, or CSV list (relative to the cwd)
    val_fraction: float = 0.2          # held-out fraction when val_cases is empty
    val_cases: list[str] = field(default_factory=list)
    train_cases: list[str] = field(default_factory=list)  # empty: every case not in validation
    max_train_cases: int = 0           # 0: all; else the first N training cases (small-data experiments)
    labels: dict[str, str] = field(default_factory=dict)  # remap/restrict: {"1": "hippocampus"} etc.
    label_map: dict[str, int] = field(default_factory=dict)  # value -> new value, e.g. {"2": 1} merges labels


@dataclass
class ModelConfig:
    name: str = "stunet_t"
    overrides: dict[str, Any] = field(default_factory=dict)   # builder keywords / card fields


@dataclass
class PlanConfig:
    roi_size: list[int] = field(default_factory=list)   # empty: from the model card
    spacing: list[float] = field(default_factory=list)  # empty: from the model card
    intensity: str = ""                                 # empty: from the model card
    auto: bool = False     # true: roi_size/spacing/intensity from the dataset fingerprint (nnU-Net-style plan)


@dataclass
class TrainConfig:
    epochs: int = 50
    iterations_per_epoch: int = 50
    batch_size: int = 2
    optimizer: str = "sgd"             # "sgd" (nnU-Net: Nesterov, momentum 0.99) or "adamw"
    lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    grad_clip: float = 12.0
    amp: bool = True                   # CUDA only
    seed: int = 0
    val_every: int = 5
    num_workers: int = 1
    foreground_fraction: float = 0.33
    augmentation: str = "default"      # "default" or "none"
    threads: int = 0                   # torch CPU threads; 0 = leave the default
    output: str = "runs/train"
    target: str = "labels"             # "labels" (hard, Dice+CE) or "sauna" (soft labels, tanh, see [sauna])


@dataclass
class FinetuneConfig:
    source: str = ""                   # NAME[.TAG] or checkpoint path
    freeze_encoder_epochs: int = 0
    lr_factor: float = 0.1             # fine-tuning lr = train.lr * lr_factor (STU-Net's recipe)


@dataclass
class SaunaConfig:
    """Options of ``train.target = "sauna"`` (medseg.training.sauna_target)."""

    threshold: float = 0.5             # on (y + 1) / 2; 0.5 = the official rule y > 0
    jml_weight: float = 1.0            # L = focal-L1 + jml_weight * signed JML (paper: 1.0)
    alpha: float = 2.0                 # focal-L1 weight alpha * |e|^beta on correctly signed pixels
    beta: float = 1.0
    pos_weight: float = 1.0            # x focal-L1 weight where y > 0 (official: 1); ~10 for small 3D structures
                                       # (MSD hippocampus collapses to empty masks at 1: benchmarks/README.md)
    activation: str = "tanh"           # "tanh" or "sigmoid" (2 sigmoid(z) - 1)
    save_soft: bool = False            # prediction also writes the soft map (recorded in the card)


@dataclass
class Recipe:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    sauna: SaunaConfig = field(default_factory=SaunaConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(options))}"


def recipe_from_dict(raw: dict, *, source: str | PathLike | None = None) -> Recipe:
    """Build a :class:`Recipe`, rejecting unknown sections and keys with a suggestion."""
    recipe = Recipe()
    sections = {f.name: f for f in dataclasses.fields(Recipe)}
    for name, values in raw.items():
        if name not in sections:
            raise MedsegError(f"unknown section [{name}]", path=source, hint=_suggest(name, sections))
        if not isinstance(values, dict):
            raise MedsegError(f"[{name}] must be a table of keys", path=source)
        section = getattr(recipe, name)
        known = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in known:
                raise MedsegError(f"unknown key {name}.{key}", path=source, hint=_suggest(key, known))
            setattr(section, key, _coerce(value, getattr(section, key), f"{name}.{key}", source))
    return recipe


def _coerce(value: Any, default: Any, key: str, source) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
        if not isinstance(value, bool):
            raise MedsegError(f"{key} must be true or false, got {value!r}", path=source)
        return value
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError) as exc:
        raise MedsegError(f"{key} must be a number, got {value!r}", path=source) from exc
    if isinstance(default, (list, dict)) and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise MedsegError(f"{key} must be JSON, got {value!r}", path=source) from exc
    return value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` strings (values parsed as TOML scalars/arrays when possible)."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise MedsegError(f"--set {item!r}: expected section.key=value, e.g. train.lr=0.001")
        dotted, text = item.split("=", 1)
        section, key = dotted.split(".", 1)
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        raw.setdefault(section, {})[key] = value
    return raw


def load_recipe(path: str | PathLike | None, overrides: list[str] | None = None) -> Recipe:
    """Read a TOML recipe (or start from defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise MedsegError("recipe not found", path=p, hint="see pipelines/ for examples")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise MedsegError(f"invalid TOML: {exc}", path=p) from exc
    return recipe_from_dict(apply_overrides(raw, overrides or []), source=path)
