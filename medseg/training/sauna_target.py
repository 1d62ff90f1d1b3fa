"""The ``train.target = "sauna"`` training mode: soft labels, a tanh output and SAUNA's losses.

What changes against hard labels (``medseg.training.loop`` asks :func:`target_for` and uses the result):

* the card: one output channel per foreground class, ``activation = "regression"``, labels unchanged
  (``labels[0]`` is the background, ``labels[c]`` names channel ``c - 1``), and
  ``postprocess["sauna"] = {"threshold", "activation", "save_soft"}`` so prediction knows to call
  :func:`medseg.transforms.sauna.soft_to_mask` instead of argmax;
* the target: each training case gets its SAUNA map (whole case, as the official code) under
  :data:`SOFT_KEY`, stored as ``y + 1`` so that zero padding and zero fill in augmentation mean y = -1
  (the official loader's trick); patches and augmentation carry it along (bilinear);
* the loss: :class:`~medseg.training.sauna_losses.SaunaLoss` (focal-L1 + signed JML) with soft deep
  supervision; validation thresholds the tanh output (the card's :class:`~medseg.models.heads.RegressionHead`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.models.heads import TrainLoss
from medseg.training.config import Recipe, SaunaConfig
from medseg.training.sauna_losses import SaunaLoss
from medseg.transforms.sauna import sauna_soft_label

logger = get_logger(__name__)

SOFT_KEY = "sauna"
TARGETS = ("labels", "sauna")


def sauna_card(card: ModelCard, cfg: SaunaConfig) -> ModelCard:
    """The card of a model trained with SAUNA targets (see the module docstring); idempotent."""
    cleanup = {k: v for k, v in card.postprocess.items() if k not in ("threshold", "label_values")}
    post = {**cleanup, "sauna": {"threshold": cfg.threshold, "activation": cfg.activation,
                                          "save_soft": cfg.save_soft}}
    if "sauna" in card.postprocess:   # already a SAUNA card (fine-tuning one): only refresh the options
        return card.replace(postprocess=post)
    labels = ("background", *card.labels) if card.activation == "sigmoid" else tuple(card.labels)
    if len(labels) < 2:
        raise MedsegError(f"model {card.name} declares no foreground label to train SAUNA targets for")
    return card.replace(activation="regression", labels=labels, out_channels=len(labels) - 1, postprocess=post)


@dataclass
class SaunaTarget:
    """Everything the loop needs for SAUNA training; built by :func:`target_for`."""

    cfg: SaunaConfig
    classes: tuple[int, ...]
    spacing: tuple[float, ...] | None = None
    key: str = SOFT_KEY

    @property
    def loss(self) -> TrainLoss:
        """SAUNA's loss on any training-mode output (soft deep supervision: area-averaged targets)."""
        c = self.cfg
        return TrainLoss(SaunaLoss(jml_weight=c.jml_weight, alpha=c.alpha, beta=c.beta,
                                   pos_weight=c.pos_weight, activation=c.activation), soft=True)

    def prepare(self, cases: list[dict]) -> None:
        """Add the (shifted) SAUNA map of each whole case under :data:`SOFT_KEY`, in place; cases that
        already have one are left alone."""
        added = 0
        for case in cases:
            if self.key not in case:
                soft = sauna_soft_label(case["label"], self.classes, self.spacing)
                case[self.key] = torch.from_numpy(soft + 1.0)
                added += case[self.key].numel() * 4
        if added:
            logger.info("SAUNA soft labels for %d cases (%.1f MB)", len(cases), added / 2**20)

    def batch_target(self, batch: dict) -> torch.Tensor:
        """The loss target of a collated batch: the signed map y in [-1, 1]."""
        return (batch[self.key].float() - 1.0).clamp(-1.0, 1.0)


def target_for(recipe: Recipe, card: ModelCard) -> SaunaTarget | None:
    """None for hard labels (``train.target = "labels"``), a :class:`SaunaTarget` for ``"sauna"``."""
    name = recipe.train.target
    if name not in TARGETS:
        raise MedsegError(f"unknown train.target {name!r}", hint=f"use one of {', '.join(TARGETS)}")
    if name == "labels":
        return None
    cfg = recipe.sauna
    if not 0.0 < cfg.threshold < 1.0 or cfg.activation not in ("tanh", "sigmoid"):
        raise MedsegError(f"invalid [sauna] options: threshold={cfg.threshold}, activation={cfg.activation!r}",
                          hint="threshold strictly between 0 and 1; activation 'tanh' or 'sigmoid'")
    if "sauna" not in card.postprocess:
        raise MedsegError("train.target is 'sauna' but the model's card was prepared for hard labels",
                          hint="prepare the data with the same recipe (prepare_data(recipe))")
    if card.out_channels != len(card.labels) - 1:
        raise MedsegError(f"SAUNA needs one output per foreground label: {card.out_channels} outputs "
                          f"for labels {card.labels}")
    if recipe.train.optimizer == "sgd" and recipe.train.lr >= 1e-3:
        logger.warning("SAUNA with SGD lr %g: the tanh output can saturate and predict nothing (seen on MSD "
                       "hippocampus with lr 0.01); the paper trains with Adam lr 1e-4 (train.optimizer = 'adamw', "
                       "train.lr = 1e-4)", recipe.train.lr)
    spacing = tuple(card.spacing) if card.spacing is not None and card.spatial_dims == 3 else None
    return SaunaTarget(cfg=cfg, classes=tuple(range(1, len(card.labels))), spacing=spacing)
