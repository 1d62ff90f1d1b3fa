"""Build a ready :class:`CascadePipeline` from a cascade recipe and the two stages' weight files.

This is the hook ``medseg predict --model cascade.<name>`` dispatches to: names starting with ``cascade.``
(or a path to a cascade ``.toml``) resolve to ``pipelines/cascade/<name>.toml``; the stage weights default to
``<stageN.train.output>/best.pt`` as written by ``medseg train`` (sha256-checked by medseg.models).
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

from medseg.cascade.cascade_training import CascadeRecipe, load_cascade_recipe
from medseg.cascade.pipeline import CascadePipeline
from medseg.core.card import Intensity
from medseg.core.errors import MedsegError

PREFIX = "cascade."


def is_cascade(name: str) -> bool:
    """True when ``name`` names a cascade (``cascade.<recipe>`` or a cascade recipe file)."""
    return name.startswith(PREFIX) or (name.endswith(".toml") and Path(name).parent.name == "cascade")


def recipe_path(name: str, search: str | PathLike = "pipelines/cascade") -> Path:
    """The recipe file for a cascade name or path, with a clear error when it does not exist."""
    path = Path(name) if name.endswith(".toml") else Path(search) / f"{name[len(PREFIX):]}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(search).glob("*.toml")) if Path(search).is_dir() else []
        raise MedsegError(f"no cascade recipe {path}", path=path, hint=f"known cascades: {known or 'none'}")
    return path


def _stage(recipe, in_extra: int, labels: tuple[str, ...] | None, weights):
    from medseg.models import create_model

    over: dict = {}
    if recipe.plan.spacing:
        over["spacing"] = tuple(recipe.plan.spacing)
    if recipe.plan.roi_size:
        over["roi_size"] = tuple(recipe.plan.roi_size)
    if recipe.plan.intensity:
        over["intensity"] = Intensity(recipe.plan.intensity)
    names = labels or tuple(recipe.data.labels[k] for k in sorted(recipe.data.labels, key=int))
    if names:
        over.update(labels=tuple(names), out_channels=len(names))
    if in_extra:
        over.update(in_channels=1 + in_extra, channel_names=("image",) + tuple(f"prior_{n}" for n in names[1:]))
    return create_model(recipe.model.name.partition(".")[0], pretrained=weights, **over)


def build_cascade(recipe: CascadeRecipe | str | PathLike, stage1_weights: str | PathLike | None = None,
                  stage2_weights: str | PathLike | None = None) -> CascadePipeline:
    """Stage models with the recipe's cards (+ weights), wrapped in a pipeline with its settings."""
    if not isinstance(recipe, CascadeRecipe):
        recipe = load_cascade_recipe(recipe)
    w1 = stage1_weights or Path(recipe.stage1.train.output) / "best.pt"
    w2 = stage2_weights or Path(recipe.stage2.train.output) / "best.pt"
    for w in (w1, w2):
        if not Path(w).is_file():
            raise MedsegError("cascade stage weights not found", path=w, hint="train both stages first (see the recipe)")
    s1 = _stage(recipe.stage1, 0, None, w1)
    s2 = _stage(recipe.stage2, len(s1.card.labels) - 1, s1.card.labels, w2)
    return CascadePipeline(s1, s2, targets=recipe.targets or None, margin_mm=recipe.margin_mm,
                           sigma_mm=recipe.sigma_mm)
