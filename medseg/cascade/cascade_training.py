"""Training the cascade stage by stage without leakage.

Stage 2 learns to refine stage 1's output, so its training prior must look like a test-time prior: made
by a stage-1 model that never saw the case (nnU-Net: out-of-fold predictions of 3d_lowres). This module
keeps the fold bookkeeping, a :class:`PriorLedger` that raises :class:`LeakageError` when a case's prior
comes from a model that trained on it, builds stage-2 inputs (image + prior channels) and reads the
two-stage recipe (``pipelines/cascade/*.toml``); :mod:`.train_cascade` drives the training.
"""
from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from medseg.cascade.regional_training import RegionalConfig, regional_config_from_dict
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.training.config import Recipe, recipe_from_dict

log = get_logger(__name__)


class LeakageError(MedsegError):
    """A stage-2 training prior was produced by a stage-1 model that trained on that case."""


def assign_folds(cases: Iterable[str], n_folds: int = 5, seed: int = 0) -> dict[str, int]:
    """Case -> fold, a seeded shuffle dealt round-robin (every fold within one case of the same size)."""
    names = sorted(set(cases))
    if n_folds < 2 or n_folds > len(names):
        raise MedsegError(f"cannot make {n_folds} folds from {len(names)} cases",
                          hint="use 2 <= folds <= number of training cases")
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[i]: k % n_folds for k, i in enumerate(order)}


def fold_training_cases(folds: Mapping[str, int], fold: int) -> list[str]:
    """The cases the stage-1 model of ``fold`` trains on (all other folds)."""
    return sorted(c for c, f in folds.items() if f != fold)


@dataclass(frozen=True)
class FoldModel:
    """A stage-1 model and the exact cases it was trained on (validation cases excluded)."""

    fold: int
    trained_on: frozenset[str]
    model: torch.nn.Module | None = None
    source: str = ""                      # checkpoint path, for the record


@dataclass
class PriorLedger:
    """Which model produced each case's stage-2 prior; refuses leaked priors."""

    records: dict[str, FoldModel] = field(default_factory=dict)

    def record(self, case: str, model: FoldModel) -> None:
        if case in model.trained_on:
            raise LeakageError(f"stage-2 prior of case {case!r} would come from fold-{model.fold} stage-1 model "
                               f"{model.source or ''} which was trained on that case",
                               hint="use the out-of-fold model: the one whose held-out fold contains the case")
        self.records[case] = model

    def verify(self, cases: Iterable[str]) -> None:
        """Every case has a prior and none of them leaked (re-checked, e.g. after loading from disk)."""
        missing = [c for c in cases if c not in self.records]
        if missing:
            raise LeakageError(f"no stage-1 prior for {len(missing)} case(s), e.g. {missing[:3]}",
                               hint="run the out-of-fold stage-1 predictions first")
        for case, model in self.records.items():
            if case in model.trained_on:
                raise LeakageError(f"stage-2 prior of case {case!r} leaked from fold-{model.fold}")


def out_of_fold_priors(images: Mapping[str, torch.Tensor], folds: Mapping[str, int],
                       fold_models: Mapping[int, FoldModel],
                       predict: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
                       ledger: PriorLedger | None = None) -> tuple[dict[str, torch.Tensor], PriorLedger]:
    """Stage-1 probabilities for every case from the model that held it out; the ledger guards leakage."""
    ledger = ledger or PriorLedger()
    priors = {}
    for case, image in images.items():
        model = fold_models[folds[case]]
        ledger.record(case, model)
        priors[case] = predict(model.model, image)
    ledger.verify(images)
    return priors, ledger


def stage2_input(image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Image channels + stage-1 foreground probabilities (the prior's channel 0 is background)."""
    if tuple(image.shape[1:]) != tuple(prior.shape[1:]):
        raise MedsegError(f"prior shape {tuple(prior.shape[1:])} differs from the image {tuple(image.shape[1:])}",
                          hint="resample the stage-1 probabilities to the stage-2 grid first")
    return torch.cat([image.float(), prior[1:].float()], 0)


@dataclass
class CascadeRecipe:
    """Both stages' training recipes plus the cascade's inference settings."""

    stage1: Recipe
    stage2: Recipe
    folds: int = 5
    seed: int = 0
    margin_mm: float = 10.0
    sigma_mm: float = 1.0
    targets: list[str] = field(default_factory=list)
    superpixels: bool = False          # train / run DeepOrgan's regional stage ([regional] table)
    regional: RegionalConfig = field(default_factory=RegionalConfig)


def load_cascade_recipe(path: str | PathLike, overrides: list[str] | None = None) -> CascadeRecipe:
    """Read ``[cascade]``, ``[stage1.*]`` and ``[stage2.*]`` tables (each stage a normal training recipe).

    ``overrides``: ``stage1.train.epochs=2`` (one stage), ``train.threads=1`` (both stages),
    ``cascade.folds=3`` or ``regional.iterations=100``; values are parsed as TOML."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MedsegError(f"cannot read cascade recipe: {exc}", path=path) from None
    return cascade_recipe_from_dict(apply_cascade_overrides(raw, overrides or []), source=path)


def apply_cascade_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` strings to a raw cascade recipe (see :func:`load_cascade_recipe`)."""
    for item in overrides:
        dotted, sep, text = item.partition("=")
        parts = dotted.split(".")
        if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[0] not in ("stage1", "stage2")):
            raise MedsegError(f"--set {item!r}: expected stage1.section.key=value, section.key=value (both "
                              "stages), cascade.key=value or regional.key=value",
                              hint="e.g. --set stage1.train.epochs=10")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        if parts[0] in ("cascade", "regional") and len(parts) == 2:
            raw.setdefault(parts[0], {})[parts[1]] = value
            continue
        stages = [parts[0]] if len(parts) == 3 else ["stage1", "stage2"]
        for stage in stages:
            raw.setdefault(stage, {}).setdefault(parts[-2], {})[parts[-1]] = value
    return raw


def cascade_recipe_from_dict(raw: dict, *, source: str | PathLike | None = None) -> CascadeRecipe:
    """Validate a raw cascade recipe: both stage tables, known ``[cascade]`` keys, equal label sets."""
    for key in ("stage1", "stage2"):
        if key not in raw:
            raise MedsegError(f"cascade recipe has no [{key}] table", path=source, hint="declare both stages")
    unknown_tables = set(raw) - {"cascade", "stage1", "stage2", "regional"}
    if unknown_tables:
        raise MedsegError(f"unknown tables {sorted(unknown_tables)} in a cascade recipe", path=source,
                          hint="use [cascade], [stage1.<section>], [stage2.<section>] and [regional]")
    settings = dict(raw.get("cascade", {}))
    known = {"folds", "seed", "margin_mm", "sigma_mm", "targets", "superpixels"}
    for key in sorted(set(settings) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        raise MedsegError(f"unknown key cascade.{key}", path=source,
                          hint=f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}")
    if not isinstance(settings.get("superpixels", False), bool):
        raise MedsegError(f"cascade.superpixels must be true or false, got {settings['superpixels']!r}", path=source)
    recipe = CascadeRecipe(recipe_from_dict(raw["stage1"], source=source),
                           recipe_from_dict(raw["stage2"], source=source), **settings,
                           regional=regional_config_from_dict(raw.get("regional", {}), source=source))
    l1, l2 = recipe.stage1.data.labels, recipe.stage2.data.labels
    if l1 and l2 and {int(k): v for k, v in l1.items()} != {int(k): v for k, v in l2.items()}:
        raise MedsegError(f"stage label sets differ: stage1 {l1} vs stage2 {l2}", path=source,
                          hint="both stages must segment the same labels (stage 2 refines stage 1's classes)")
    return recipe


def stage2_training_data(data, priors: Mapping[str, torch.Tensor], ledger: PriorLedger):
    """Stage-2 :class:`~medseg.training.prepare.TrainingData`: every case's image gets its out-of-fold prior
    as extra channels (already on the stage-2 grid), the card gains one ``prior_<label>`` channel per
    foreground label. Pass the result to ``medseg.training.fit(recipe.stage2, data=...)``."""
    from medseg.training.prepare import TrainingData

    cases = [c["case"] for c in (*data.train, *data.val)]
    ledger.verify(cases)

    def _with_prior(case: dict) -> dict:
        return {**case, "image": stage2_input(case["image"], priors[case["case"]]).contiguous()}

    fg = data.card.labels[1:]
    card = data.card.replace(in_channels=data.card.in_channels + len(fg),
                             channel_names=tuple(data.card.channel_names) + tuple(f"prior_{n}" for n in fg))
    return TrainingData([_with_prior(c) for c in data.train], [_with_prior(c) for c in data.val], card,
                        data.dataset, data.split)
