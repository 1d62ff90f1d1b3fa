"""Build a ready :class:`CascadePipeline` from a cascade recipe and the two stages' weight files.

This is the hook ``medseg predict --model cascade.<name>`` dispatches to: names starting with ``cascade.``
(or a path to a cascade ``.toml``) resolve to ``pipelines/cascade/<name>.toml`` (the current directory first,
then the recipes shipped in the package, ``medseg/data/pipelines/cascade``); the stage weights default to
``<stageN.train.output>/best.pt`` as written by ``medseg train``. A training checkpoint carries the card it was trained with (labels, spacing, patch,
intensity from the dataset plan), which wins over the recipe; a bare weights file gets the recipe's card.
With ``[cascade] superpixels = true`` the regional stage's ``<regional output>/best.pt`` is loaded too.
"""
from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from torch import nn

from medseg.cascade.cascade_training import CascadeRecipe, load_cascade_recipe
from medseg.cascade.pipeline import CascadePipeline
from medseg.cascade.regional_training import load_regional, regional_output
from medseg.cascade.superpixels import RegionalStage
from medseg.core.card import Intensity
from medseg.core.errors import MedsegError
from medseg.core.resources import pipelines_dir
from medseg.training.config import Recipe

PREFIX = "cascade."
_CARD_KEYS = ("in_channels", "channel_names", "out_channels", "labels", "roi_size", "spacing", "orientation",
              "modality", "mirror_axes", "postprocess")


def is_cascade(name: str) -> bool:
    """True when ``name`` names a cascade (``cascade.<recipe>`` or a cascade recipe file)."""
    return name.startswith(PREFIX) or (name.endswith(".toml") and Path(name).parent.name == "cascade")


def recipe_path(name: str, search: str | PathLike | Sequence[str | PathLike] | None = None) -> Path:
    """The recipe file for a cascade name or path, with a clear error when it does not exist."""
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise MedsegError("no cascade recipe", path=path, hint="check the path")
        return path
    if search is None:
        folders = [Path("pipelines/cascade"), pipelines_dir() / "cascade"]
    else:
        folders = [Path(search)] if isinstance(search, (str, PathLike)) else [Path(s) for s in search]
    for folder in folders:
        path = folder / f"{name[len(PREFIX):]}.toml"
        if path.is_file():
            return path
    known = sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.toml")})
    raise MedsegError(f"no cascade recipe {folders[0] / (name[len(PREFIX):] + '.toml')}",
                      hint=f"known cascades: {', '.join(PREFIX + k for k in known) or 'none'}")


def _checkpoint_card(weights: Path) -> dict | None:
    """The card a ``medseg train`` checkpoint was trained with (None for bare weight files)."""
    if weights.suffix == ".safetensors":
        return None
    from medseg.training.checkpoint import load_checkpoint

    state = load_checkpoint(weights)
    return state.get("card") if isinstance(state, dict) and isinstance(state.get("card"), dict) else None


def stage_model(recipe: Recipe, weights: str | PathLike, *, in_extra: int = 0,
                labels: tuple[str, ...] | None = None) -> nn.Module:
    """One stage's network with weights: card from the checkpoint when it has one, else from the recipe
    (``in_extra`` prior channels and stage 1's ``labels`` for stage 2)."""
    from medseg.models import create_model

    weights = Path(weights)
    over: dict = dict(recipe.model.overrides)
    saved = _checkpoint_card(weights)
    if saved is not None:
        for key in _CARD_KEYS:
            if key in saved:
                value = saved[key]
                over[key] = tuple(value) if isinstance(value, list) else value
        over["intensity"] = Intensity(**saved["intensity"])
    else:
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
    return create_model(recipe.model.name.partition(".")[0], pretrained=str(weights), **over)


def stage_weights(recipe: CascadeRecipe, weights: str | PathLike | Sequence[str | PathLike] | None = None
                  ) -> tuple[Path, Path]:
    """``(stage1, stage2)`` weight files: the recipe's ``train.output/best.pt``, a folder holding
    ``stage1/best.pt`` and ``stage2/best.pt``, or an explicit pair (a third file, the regional stage's, is
    allowed and ignored here); missing files are an error."""
    if weights is None:
        pair = (Path(recipe.stage1.train.output) / "best.pt", Path(recipe.stage2.train.output) / "best.pt")
    elif isinstance(weights, (str, PathLike)):
        pair = (Path(weights) / "stage1" / "best.pt", Path(weights) / "stage2" / "best.pt")
    else:
        if len(weights) not in (2, 3):
            raise MedsegError(f"a cascade needs 2 weight files (stage 1, stage 2; + regional), got {len(weights)}")
        pair = (Path(weights[0]), Path(weights[1]))
    for w in pair:
        if not w.is_file():
            raise MedsegError("cascade stage weights not found", path=w,
                              hint="train both stages first (medseg train <cascade recipe>) or pass --checkpoint")
    return pair


def regional_weights(recipe: CascadeRecipe, weights: str | PathLike | Sequence[str | PathLike] | None = None
                     ) -> Path | None:
    """The regional stage's weight file when the recipe enables it (None otherwise): ``<regional
    output>/best.pt``, ``regional/best.pt`` inside a ``--checkpoint`` folder, or the third of explicit files."""
    if not recipe.superpixels:
        return None
    if isinstance(weights, (str, PathLike)):
        path = Path(weights) / "regional" / "best.pt"
    elif weights is not None and len(weights) == 3:
        path = Path(weights[2])
    else:
        path = regional_output(recipe.regional, recipe.stage2.train.output) / "best.pt"
    if not path.is_file():
        raise MedsegError("regional-stage weights not found ([cascade] superpixels = true)", path=path,
                          hint="train it with `medseg train <cascade recipe> --resume` (finished stages are "
                               "skipped), or set superpixels = false")
    return path


def regional_stage(recipe: CascadeRecipe, stage2: nn.Module,
                   weights: str | PathLike | Sequence[str | PathLike] | None = None
                   ) -> tuple[RegionalStage | None, Path | None]:
    """The recipe's regional stage (and its file) for ``CascadePipeline(regional=...)``, or ``(None, None)``."""
    path = regional_weights(recipe, weights)
    return (None, None) if path is None else (load_regional(path, stage2.card.in_channels), path)


def build_cascade(recipe: CascadeRecipe | str | PathLike, stage1_weights: str | PathLike | None = None,
                  stage2_weights: str | PathLike | None = None,
                  regional_path: str | PathLike | None = None) -> CascadePipeline:
    """Stage models with their cards (+ weights), wrapped in a pipeline with the recipe's settings (and the
    regional stage when ``[cascade] superpixels = true``)."""
    if not isinstance(recipe, CascadeRecipe):
        recipe = load_cascade_recipe(recipe)
    given = None
    if stage1_weights or stage2_weights:
        given = (stage1_weights or Path(recipe.stage1.train.output) / "best.pt",
                 stage2_weights or Path(recipe.stage2.train.output) / "best.pt")
    w1, w2 = stage_weights(recipe, given)
    s1 = stage_model(recipe.stage1, w1)
    s2 = stage_model(recipe.stage2, w2, in_extra=len(s1.card.labels) - 1, labels=s1.card.labels)
    regional, _ = regional_stage(recipe, s2, None if regional_path is None else (w1, w2, regional_path))
    return CascadePipeline(s1, s2, targets=recipe.targets or None, margin_mm=recipe.margin_mm,
                           sigma_mm=recipe.sigma_mm, regional=regional)
