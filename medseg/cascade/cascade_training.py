"""Training the cascade stage by stage without leakage.

Stage 2 learns to refine stage 1's output, so its training prior must look like a test-time prior: made
by a stage-1 model that never saw the case (nnU-Net: out-of-fold predictions of 3d_lowres). This module
keeps the fold bookkeeping, a :class:`PriorLedger` that raises :class:`LeakageError` when a case's prior
comes from a model that trained on it, builds stage-2 inputs (image + prior channels) and drives
``medseg.training.fit`` for both stages from one recipe (``pipelines/cascade/*.toml``).
"""
from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch

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
    superpixels: bool = False


def load_cascade_recipe(path: str | PathLike) -> CascadeRecipe:
    """Read ``[cascade]``, ``[stage1.*]`` and ``[stage2.*]`` tables (each stage a normal training recipe)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MedsegError(f"cannot read cascade recipe: {exc}", path=path) from None
    for key in ("stage1", "stage2"):
        if key not in raw:
            raise MedsegError(f"cascade recipe has no [{key}] table", path=path, hint="declare both stages")
    settings = dict(raw.get("cascade", {}))
    known = {"folds", "seed", "margin_mm", "sigma_mm", "targets", "superpixels"}
    if set(settings) - known:
        raise MedsegError(f"unknown [cascade] keys {sorted(set(settings) - known)}", path=path, hint=f"known: {sorted(known)}")
    return CascadeRecipe(recipe_from_dict(raw["stage1"], source=path), recipe_from_dict(raw["stage2"], source=path),
                         **settings)


def train_stage1_folds(recipe: CascadeRecipe, cases: list[str], *, fit=None) -> dict[int, FoldModel]:
    """Train one stage-1 model per fold (``medseg.training.fit``), each holding its fold out."""
    if fit is None:
        from medseg.training.loop import fit
    folds = assign_folds(cases, recipe.folds, recipe.seed)
    out: dict[int, FoldModel] = {}
    for k in range(recipe.folds):
        r = copy.deepcopy(recipe.stage1)
        r.data.val_cases = sorted(c for c, f in folds.items() if f == k)
        r.train.output = str(Path(recipe.stage1.train.output) / f"fold_{k}")
        log.info("stage 1 fold %d: %d training cases", k, len(cases) - len(r.data.val_cases))
        result = fit(r)
        out[k] = FoldModel(k, frozenset(fold_training_cases(folds, k)), None, str(Path(result.output) / "best.pt"))
    return out


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
