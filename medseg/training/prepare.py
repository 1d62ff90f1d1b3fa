"""Turn a recipe into data and a model: dataset loading, validation, split, preprocessing, model card."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from medseg.core.card import Intensity, ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models import create_model, get_card
from medseg.models.heads import head_for
from medseg.training.config import Recipe
from medseg.training.datalist import Dataset, load_dataset
from medseg.training.fingerprint import fingerprint, make_plan
from medseg.training.preprocess import load_case
from medseg.training.validation import validate_dataset

logger = get_logger(__name__)


@dataclass
class TrainingData:
    """Preprocessed training and validation cases plus the card they were prepared for."""

    train: list[dict]
    val: list[dict]
    card: ModelCard
    dataset: Dataset | None = None
    split: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)   # {"fingerprint": ..., "plan": ...}, written to plan.json


def split_cases(names: list[str], recipe: Recipe) -> tuple[list[str], list[str]]:
    """Validation = ``data.val_cases`` or every k-th case (k from ``val_fraction``); training = the rest."""
    d = recipe.data
    if d.val_cases:
        unknown = sorted(set(d.val_cases) - set(names))
        if unknown:
            raise MedsegError(f"validation cases not in the dataset: {unknown[:5]}")
        val = [n for n in names if n in set(d.val_cases)]
    elif d.val_fraction > 0:
        step = max(int(round(1 / d.val_fraction)), 2)
        val = names[step - 1::step]
    else:
        val = []
    train = [n for n in names if n not in set(val)]
    if d.train_cases:
        train = [n for n in names if n in set(d.train_cases)]
    if d.max_train_cases:
        train = train[: d.max_train_cases]
    if not train:
        raise MedsegError("no training cases left after the split", hint="check data.val_cases / train_cases")
    return train, val


def card_for(recipe: Recipe, dataset: Dataset | None, plan: dict | None = None) -> ModelCard:
    """The model card adapted to the data: label names and count, channels, the dataset plan (when
    ``plan.auto``), then explicit ``[plan]`` overrides."""
    card = get_card(recipe.model.name)
    changes: dict = {}
    if plan and recipe.plan.auto:
        changes.update(roi_size=tuple(plan["roi_size"]), spacing=tuple(plan["spacing"]),
                       intensity=Intensity(**plan["intensity"]))
    if dataset is not None:
        names = _label_names(recipe, dataset)
        if names:
            changes.update(head_for(card).fit_labels(names))
        if len(dataset.channel_names) != card.in_channels or dataset.channel_names != card.channel_names:
            changes.update(in_channels=len(dataset.channel_names), channel_names=tuple(dataset.channel_names))
    p = recipe.plan
    if p.roi_size:
        changes["roi_size"] = tuple(p.roi_size)
    if p.spacing:
        changes["spacing"] = tuple(p.spacing)
    if p.intensity:
        changes["intensity"] = Intensity(p.intensity)
    card = card.replace(**changes) if changes else card
    if recipe.train.target == "sauna":  # soft-label training: one tanh output per foreground label
        from medseg.training.sauna_target import sauna_card

        card = sauna_card(card, recipe.sauna)
    return card


def _label_names(recipe: Recipe, dataset: Dataset) -> tuple[str, ...]:
    if recipe.data.labels:
        mapping = {int(k): v for k, v in recipe.data.labels.items()}
        return tuple(mapping.get(i, f"class_{i}") for i in range(max(mapping) + 1))
    return dataset.label_names if dataset.labels else ()


def prepare_data(recipe: Recipe) -> TrainingData:
    """Load, validate, split and preprocess the recipe's dataset (all cases held in memory)."""
    if not recipe.data.dataset:
        raise MedsegError("the recipe names no dataset", hint="set data.dataset = 'path/to/dataset'")
    source = Path(recipe.data.dataset)
    if not source.exists():  # relative paths are read from the working directory, not the recipe's folder
        raise MedsegError(f"the recipe's dataset {recipe.data.dataset!r} does not exist (from {Path.cwd()})",
                          path=source, hint="pass --set data.dataset=PATH (a folder with dataset.json, "
                          "imagesTr/ + labelsTr/, or a CSV list), or run from the folder the recipe expects")
    dataset = load_dataset(source)
    validate_dataset(dataset)
    fp = fingerprint(dataset)
    plan = make_plan(fp, card_for(recipe, dataset), batch_size=recipe.train.batch_size)
    card = card_for(recipe, dataset, plan)
    names = [c["case"] for c in dataset.cases]
    train_names, val_names = split_cases(names, recipe)
    by_name = {c["case"]: c for c in dataset.cases}
    label_map = {int(k): int(v) for k, v in recipe.data.label_map.items()}

    def load(name: str) -> dict:
        case = load_case(by_name[name], card)
        if label_map:
            lut = torch.arange(int(case["label"].max()) + 1)
            for src, dst in label_map.items():
                if src < len(lut):
                    lut[src] = dst
            case["label"] = lut[case["label"]]
        return case

    train = [load(n) for n in train_names]
    val = [load(n) for n in val_names]
    logger.info("%d training and %d validation cases", len(train), len(val))
    card = with_quality_reference(card, train)
    return TrainingData(train=train, val=val, card=card, dataset=dataset,
                        split={"train": train_names, "val": val_names}, plan={"fingerprint": fp, "plan": plan})


def with_quality_reference(card: ModelCard, cases: list[dict]) -> ModelCard:
    """The card with the training distribution of every structure (volume, components, intensity) in
    ``card.quality["reference"]``, what the quality estimate compares predictions with (:mod:`medseg.quality`).
    Exclusive-label models only (softmax, sigmoid); the card's spacing is the model grid's."""
    from medseg.models.heads import head_for
    from medseg.quality.signals import reference_statistics

    head = head_for(card)
    if head.kind not in ("softmax", "sigmoid") or not cases:
        return card
    spacing = tuple(card.spacing) if card.spacing else (1.0,) * 3
    reference = reference_statistics(cases, spacing, head.label_names)
    return card.replace(quality={**dict(card.quality), "reference": reference})


def build_model_for(recipe: Recipe, data: TrainingData) -> nn.Module:
    """Build the recipe's model with the data's card (labels, channels, roi)."""
    card = data.card
    model = create_model(recipe.model.name.partition(".")[0], **dict(recipe.model.overrides),
                         **{k: getattr(card, k) for k in ("in_channels", "channel_names", "out_channels", "labels",
                                                          "roi_size", "spacing", "intensity", "activation",
                                                          "postprocess")})
    return model


