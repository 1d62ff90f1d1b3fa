"""Training recipes: plain TOML files in ``pipelines/`` mapped onto typed dataclasses.

One schema: every field's type and range is declared on the dataclasses below (``Annotated`` pydantic
constraints) and checked by one pydantic ``TypeAdapter`` for the recipe file and ``--set`` alike, so a
bad value (``train.lr=-1``, ``train.epochs=2.7``, ``data.val_fraction=1.5``) is one line naming the key
instead of a traceback or a silently useless run. Unknown sections or keys are an error with a "did you
mean"; ``--set section.key=value`` overrides any key.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from medseg.core.errors import MedsegError

# the value types of the schema: finite numbers only (nan/inf are never a sensible setting)
PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]        # [0, 1)
Probability = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]     # (0, 1)
UnitFloat = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]       # [0, 1]


@dataclass
class DataConfig:
    dataset: str = ""                  # MSD/nnU-Net folder, dataset.json, or CSV list (relative to the cwd)
    val_fraction: Fraction = 0.2          # held-out fraction when val_cases is empty
    val_cases: list[str] = field(default_factory=list)
    train_cases: list[str] = field(default_factory=list)  # empty: every case not in validation
    max_train_cases: NonNegInt = 0           # 0: all; else the first N training cases (small-data experiments)
    labels: dict[str, str] = field(default_factory=dict)  # remap/restrict: {"1": "hippocampus"} etc.
    label_map: dict[str, NonNegInt] = field(default_factory=dict)  # value -> new value, e.g. {"2": 1} merges labels


@dataclass
class ModelConfig:
    name: str = "stunet_t"
    overrides: dict[str, Any] = field(default_factory=dict)   # builder keywords / card fields


@dataclass
class PlanConfig:
    roi_size: list[PosInt] = field(default_factory=list)   # empty: from the model card
    spacing: list[PosFloat] = field(default_factory=list)  # empty: from the model card
    intensity: Literal["", "zscore", "ct", "percentile", "minmax", "none"] = ""                                 # empty: from the model card
    auto: bool = False     # true: roi_size/spacing/intensity from the dataset fingerprint (nnU-Net-style plan)


@dataclass
class TrainConfig:
    epochs: PosInt = 50
    iterations_per_epoch: PosInt = 50
    batch_size: PosInt = 2
    optimizer: Literal["sgd", "adamw"] = "sgd"             # "sgd" (nnU-Net: Nesterov, momentum 0.99) or "adamw"
    lr: PosFloat = 1e-2
    weight_decay: NonNegFloat = 3e-5
    momentum: Fraction = 0.99
    grad_clip: PosFloat = 12.0
    amp: bool = True                   # CUDA only
    seed: NonNegInt = 0
    val_every: PosInt = 5
    num_workers: NonNegInt = 1
    foreground_fraction: UnitFloat = 0.33
    augmentation: Literal["default", "none"] = "default"      # "default" or "none"
    threads: NonNegInt = 0                   # torch CPU threads; 0 = leave the default
    output: Annotated[str, Field(min_length=1)] = "runs/train"
    target: Literal["labels", "sauna"] = "labels"             # "labels" (hard, Dice+CE) or "sauna" (soft labels, tanh, see [sauna])


@dataclass
class FinetuneConfig:
    source: str = ""                   # NAME[.TAG] or checkpoint path
    freeze_encoder_epochs: NonNegInt = 0
    lr_factor: PosFloat = 0.1             # fine-tuning lr = train.lr * lr_factor (STU-Net's recipe)


@dataclass
class SaunaConfig:
    """Options of ``train.target = "sauna"`` (medseg.training.sauna_target)."""

    threshold: Probability = 0.5             # on (y + 1) / 2; 0.5 = the official rule y > 0
    jml_weight: NonNegFloat = 1.0            # L = focal-L1 + jml_weight * signed JML (paper: 1.0)
    alpha: NonNegFloat = 2.0                 # focal-L1 weight alpha * |e|^beta on correctly signed pixels
    beta: NonNegFloat = 1.0
    pos_weight: PosFloat = 1.0            # x focal-L1 weight where y > 0 (official: 1); ~10 for small 3D structures
                                       # (MSD hippocampus collapses to empty masks at 1: benchmarks/README.md)
    activation: Literal["tanh", "sigmoid"] = "tanh"           # "tanh" or "sigmoid" (2 sigmoid(z) - 1)
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
    """Build a validated :class:`Recipe`: unknown sections/keys get a suggestion, bad values one line."""
    sections = {f.name: f for f in dataclasses.fields(Recipe)}
    defaults = Recipe()
    cleaned: dict[str, dict[str, Any]] = {}
    for name, values in raw.items():
        if name not in sections:
            raise MedsegError(f"unknown section [{name}]", path=source, hint=_suggest(name, sections))
        if not isinstance(values, dict):
            raise MedsegError(f"[{name}] must be a table of keys", path=source)
        section = getattr(defaults, name)
        known = {f.name: f for f in dataclasses.fields(section)}
        for key in values:
            if key not in known:
                raise MedsegError(f"unknown key {name}.{key}", path=source, hint=_suggest(key, known))
        cleaned[name] = {key: _from_text(value, getattr(section, key), f"{name}.{key}", source)
                         for key, value in values.items()}
    try:
        return _SCHEMA.validate_python(cleaned)
    except ValidationError as exc:
        raise MedsegError(_first_error(exc, cleaned), path=source,
                          hint="fix the recipe or the --set value") from None


_SCHEMA = TypeAdapter(Recipe)


def _first_error(exc: ValidationError, values: dict) -> str:
    """``train.lr must be greater than 0, got -1`` from pydantic's first error (one line)."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc[:2]) + "".join(f"[{part}]" for part in loc[2:])
    message = error["msg"].split(",")[0].replace("Input should be", "must be").replace("Value error", "invalid")
    value = values.get(loc[0], {}).get(loc[1]) if len(loc) >= 2 else None
    if len(loc) > 2 or value is None:
        value = error.get("input")
    return f"{key} {message}, got {value!r}"


def _from_text(value: Any, default: Any, key: str, source) -> Any:
    """``--set`` gives TOML scalars; a string for a list/table field may hold JSON (``'["a", "b"]'``)."""
    if isinstance(default, (list, dict)) and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise MedsegError(f"{key} must be a {'list' if isinstance(default, list) else 'table'}, "
                              f"got {value!r}", path=source) from exc
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
