"""``medseg train`` on a cascade recipe: both stages, stage by stage, without leakage.

1. Stage 1 at its (coarse) spacing, once per fold of a k-fold split of the training cases; each fold model
   predicts the cases it held out: the out-of-fold (OOF) priors, checked by :class:`PriorLedger`.
2. Stage 1 once more on all training cases: the model the cascade runs at inference.
3. Stage 2 at its own spacing on image + OOF stage-1 probabilities (linearly upsampled to the stage-2 grid),
   on ROI crops as at inference: around each target organ, plus the prior's false detections
   (:func:`roi_crops`).
4. With ``[cascade] superpixels = true``: DeepOrgan's regional stage (:mod:`.regional_training`), a small
   ConvNet on SLIC superpixels of the same stage-2 ROI crops (same out-of-fold priors, same ROI rule).

Each stage writes ``done.json`` when it finishes; with ``resume`` a finished stage is skipped (after checking
it was trained with the same recipe and folds) and an unfinished one continues from its ``last.pt``.
Layout: ``<stage1.output>/fold_<k>/``, ``<stage1.output>/best.pt``, ``<stage2.output>/best.pt`` (+ the
OOF ledger ``oof_priors.json``), optionally ``<regional output>/best.pt`` (default ``regional/`` beside
stage 2's folder; an unfinished regional stage is retrained from scratch on resume: it is small), which
is what ``medseg predict --model cascade.<name>`` loads.
"""
from __future__ import annotations

import copy
import json
import shutil
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch

from medseg.cascade._resample import resize
from medseg.cascade.cascade_training import (
    CascadeRecipe,
    FoldModel,
    assign_folds,
    fold_training_cases,
    load_cascade_recipe,
    out_of_fold_priors,
    stage2_training_data,
)
from medseg.cascade.regional_training import fit_regional, regional_output
from medseg.cascade.roi import crop_to_roi, roi_from_mask
from medseg.core.atomic import atomic_path, atomic_write_text
from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.training.config import Recipe
from medseg.training.prepare import TrainingData, prepare_data

log = get_logger(__name__)
DONE = "done.json"


def is_cascade_recipe(path: str | PathLike) -> bool:
    """True for a TOML file with ``[stage1]`` and ``[stage2]`` tables."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return "stage1" in raw and "stage2" in raw


@dataclass
class CascadeTrainResult:
    """Where each stage's files are, and which stages ran or were skipped (resume)."""

    stage1: Path
    stage2: Path
    folds: dict[int, Path]
    regional: Path | None = None
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _signature(recipe: Recipe, extra: dict) -> dict:
    d = recipe.to_dict()
    for key in ("threads", "num_workers", "output"):   # how, not what, is trained
        d["train"].pop(key, None)
    return json.loads(json.dumps({"recipe": d, **extra}))


def _finished(out: Path, recipe: Recipe, extra: dict, stage: str) -> bool:
    marker = out / DONE
    if not marker.is_file():
        return False
    record = json.loads(marker.read_text(encoding="utf-8"))
    if {k: record.get(k) for k in ("recipe", *extra)} != _signature(recipe, extra):
        raise MedsegError(f"{stage} was finished with another recipe or fold split", path=marker,
                          hint=f"delete {out} to retrain it, or drop --resume to retrain every stage")
    return True


def _ensure_best(out: Path) -> None:
    """A stage trained without validation cases has no best.pt: its last.pt is the model."""
    best, last = out / "best.pt", out / "last.pt"
    if not best.is_file() and last.is_file():
        with atomic_path(best) as temp:
            shutil.copyfile(last, temp)
        log.info("%s: no validation cases, best.pt = last.pt", out)


def stage_probabilities(model: torch.nn.Module, image: torch.Tensor, card: ModelCard,
                        overlap: float = 0.25) -> torch.Tensor:
    """Softmax of ``model`` over a whole preprocessed ``(C, *S)`` image through the prediction engine, as the
    cascade runs it at inference (:mod:`medseg.inference.segment`)."""
    from medseg.inference.segment import engine_options, segment

    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    options = engine_options(card, tuple(image.shape[1:]), overlap=overlap, batch_size=4, compute=device,
                             probabilities=True)
    result = segment(model, card, image.float(), options)
    assert result.probabilities is not None
    return result.probabilities.float()


def roi_crops(data: TrainingData, targets: Sequence[str], spacing: Sequence[float], margin_mm: float) -> TrainingData:
    """Stage-2 training cases, per (case, target organ): the ROI around the organ's reference label (what a
    good stage 1 hands over at inference: stage 2 learns to segment), and, when the out-of-fold prior puts
    the organ elsewhere, also that ROI (a false detection: stage 2 learns to reject it). Both ROIs are grown
    by ``margin_mm`` as at inference; the prior channels are the out-of-fold ones in both."""
    labels = tuple(data.card.labels)
    n_img = data.card.in_channels - (len(labels) - 1)
    split: dict[str, list[dict]] = {"train": [], "val": []}
    for part in ("train", "val"):
        for case in getattr(data, part):
            prior = case["image"][n_img:]
            label_map = torch.cat([1.0 - prior.sum(0, keepdim=True), prior]).argmax(0)
            for organ in targets:
                k = labels.index(organ)
                truth = roi_from_mask(case["label"][0] == k, spacing, margin_mm)
                found = roi_from_mask(label_map == k, spacing, margin_mm)
                rois = [(r, tag) for r, tag in ((truth, ""), (found, ":prior")) if r is not None]
                if truth is not None and found is not None and _overlap(truth, found) > 0.5:
                    rois = rois[:1]                           # the prior's ROI is (mostly) the organ's
                for roi, tag in rois:
                    split[part].append({"case": f"{case['case']}:{organ}{tag}",
                                        "image": crop_to_roi(case["image"], roi),
                                        "label": crop_to_roi(case["label"], roi)})
    if not split["train"]:
        raise MedsegError(f"no stage-2 training crop: none of {list(targets)} occurs in the training cases",
                          hint="check [cascade] targets and the label map")
    return TrainingData(split["train"], split["val"], data.card, data.dataset,
                        {k: [c["case"] for c in v] for k, v in split.items()}, data.plan)


def _overlap(a, b) -> float:
    """Intersection over the smaller box."""
    inter = 1
    for s0, e0, s1, e1 in zip(a.start, a.stop, b.start, b.stop):
        inter *= max(0, min(e0, e1) - max(s0, s1))
    return inter / max(min(a.voxels, b.voxels), 1)


class _Trainer:
    """Runs (or skips, on resume) one stage at a time; keeps the result record."""

    def __init__(self, resume: bool, fit: Callable, fit_kwargs: dict, on_stage: Callable[[str, str], None] | None,
                 result: CascadeTrainResult) -> None:
        self.resume, self.fit, self.fit_kwargs, self.result = resume, fit, fit_kwargs, result
        self.notify = on_stage or (lambda stage, status: None)

    def run(self, stage: str, recipe: Recipe, data: TrainingData | Callable[[], TrainingData], out: Path,
            extra: dict, fit: Callable | None = None) -> None:
        r = copy.deepcopy(recipe)
        r.train.output = str(out)
        if self.resume and _finished(out, r, extra, stage):
            log.info("%s already finished (%s): skipped", stage, out)
            self.result.skipped.append(stage)
            self.notify(stage, "skipped")
            return
        self.notify(stage, "training")
        (fit or self.fit)(r, data=data() if callable(data) else data, resume=self.resume, **self.fit_kwargs)
        _ensure_best(out)
        atomic_write_text(out / DONE, json.dumps({"stage": stage, **_signature(r, extra)}, indent=1))
        self.result.ran.append(stage)
        self.notify(stage, "done")


def _cases(data: TrainingData) -> dict[str, dict]:
    return {c["case"]: c for c in (*data.train, *data.val)}


def train_cascade(recipe: CascadeRecipe | str | PathLike, *, overrides: list[str] | None = None,
                  resume: bool = False, fit: Callable | None = None,
                  on_stage: Callable[[str, str], None] | None = None, **fit_kwargs) -> CascadeTrainResult:
    """Train both stages of a cascade recipe (see the module docstring).

    Args:
        recipe: a :class:`CascadeRecipe` or the path of its TOML file (``overrides`` as ``--set``).
        resume: skip finished stages, continue an unfinished one from its ``last.pt``.
        fit: the training function (default ``medseg.training.fit``); ``fit_kwargs`` go to it
            (``dist``, ``on_epoch``, ``on_iteration``, ``max_epochs``).
        on_stage: ``on_stage(stage, status)`` with status ``training``, ``done`` or ``skipped``.
    """
    if not isinstance(recipe, CascadeRecipe):
        recipe = load_cascade_recipe(recipe, overrides)
    if fit is None:
        from medseg.training.loop import fit
    dist = fit_kwargs.get("dist")
    if dist is not None and dist.world_size > 1:
        raise MedsegError("cascade training runs in one process", hint="run `medseg train` without torchrun")
    s1_out, s2_out = Path(recipe.stage1.train.output), Path(recipe.stage2.train.output)
    if s1_out.resolve() == s2_out.resolve():
        raise MedsegError("stage1.train.output and stage2.train.output are the same folder",
                          hint="give each stage its own output folder")
    reg_out = regional_output(recipe.regional, s2_out) if recipe.superpixels else None
    if reg_out is not None and reg_out.resolve() in (s1_out.resolve(), s2_out.resolve()):
        raise MedsegError("the regional stage's output is a stage's folder",
                          hint="set [regional] output to its own folder")
    data1, data2 = prepare_data(recipe.stage1), prepare_data(recipe.stage2)
    labels1, labels2 = tuple(data1.card.labels), tuple(data2.card.labels)
    if labels1 != labels2:
        raise MedsegError(f"stage label sets differ: stage 1 {list(labels1)} vs stage 2 {list(labels2)}",
                          hint="give both stages the same data.labels / label_map")
    cases1, cases2 = _cases(data1), _cases(data2)
    if set(cases1) != set(cases2):
        raise MedsegError(f"the stages see different cases ({sorted(set(cases1) ^ set(cases2))[:5]})",
                          hint="point both stages at the same dataset")
    targets = recipe.targets or list(labels1[1:])
    unknown = [t for t in targets if t not in labels1[1:]]
    if unknown:
        raise MedsegError(f"unknown cascade target(s) {unknown}", hint=f"choose from {list(labels1[1:])}")
    folds = assign_folds(sorted(cases1), recipe.folds, recipe.seed)
    result = CascadeTrainResult(s1_out, s2_out, {k: s1_out / f"fold_{k}" for k in range(recipe.folds)}, reg_out)
    trainer = _Trainer(resume, fit, fit_kwargs, on_stage, result)

    fold_models: dict[int, FoldModel] = {}
    for k in range(recipe.folds):
        held, train = sorted(c for c, f in folds.items() if f == k), fold_training_cases(folds, k)
        r = copy.deepcopy(recipe.stage1)
        r.data.train_cases, r.data.val_cases = train, held
        data = TrainingData([cases1[c] for c in train], [cases1[c] for c in held], data1.card, data1.dataset,
                            {"train": train, "val": held}, data1.plan)
        out = result.folds[k]
        trainer.run(f"stage 1 fold {k}", r, data, out, {"trained_on": train, "held_out": held})
        record = json.loads((out / DONE).read_text(encoding="utf-8"))   # what the model really trained on
        fold_models[k] = FoldModel(k, frozenset(record["trained_on"]), None, str(out / "best.pt"))
    trainer.run("stage 1", recipe.stage1, data1, s1_out, {"trained_on": data1.split.get("train", [])})

    fold_of = {c: folds[c] for c in sorted(cases1)}
    spacing = tuple(data2.card.spacing) if data2.card.spacing else (1.0, 1.0, 1.0)

    cache: dict[str, TrainingData] = {}

    def stage2_inputs() -> TrainingData:
        """Stage-2 cases with out-of-fold prior channels (computed once, shared with the regional stage)."""
        if "data" in cache:
            return cache["data"]
        from medseg.cascade.loader import stage_model

        loaded = {k: FoldModel(m.fold, m.trained_on, stage_model(recipe.stage1, m.source), m.source)
                  for k, m in fold_models.items()}
        images = {c: cases1[c]["image"] for c in sorted(cases1)}
        priors1, ledger = out_of_fold_priors(images, folds, loaded,
                                             lambda net, x: stage_probabilities(net, x, net.card))
        priors2 = {c: resize(p, tuple(cases2[c]["image"].shape[1:])) for c, p in priors1.items()}
        s2_out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(s2_out / "oof_priors.json", json.dumps(
            {c: {"fold": m.fold, "model": m.source, "trained_on": sorted(m.trained_on)}
             for c, m in ledger.records.items()}, indent=1))
        log.info("out-of-fold stage-1 priors for %d cases (ledger: %s)", len(priors2), s2_out / "oof_priors.json")
        cache["data"] = stage2_training_data(data2, priors2, ledger)
        return cache["data"]

    def stage2_data() -> TrainingData:
        return roi_crops(stage2_inputs(), targets, spacing, recipe.margin_mm)

    extra2 = {"folds": fold_of, "targets": list(targets), "margin_mm": recipe.margin_mm}
    trainer.run("stage 2", recipe.stage2, stage2_data, s2_out, extra2)
    if reg_out is not None:
        def fit_reg(r: Recipe, *, data: TrainingData, resume: bool = False, dist=None, **_ignored) -> None:
            crops = regional_crops(data, targets, spacing, recipe.margin_mm)
            fit_regional(crops["train"], recipe.regional, reg_out, val=crops["val"], labels=labels2,
                         device=dist.device if dist is not None else "cpu")

        trainer.run("regional stage", recipe.stage2, stage2_inputs, reg_out,
                    {**extra2, "regional": recipe.regional.settings()}, fit=fit_reg)
    return result


def regional_crops(data: TrainingData, targets: Sequence[str], spacing: Sequence[float], margin_mm: float
                   ) -> dict[str, list[tuple[torch.Tensor, torch.Tensor, int]]]:
    """``(image, label, organ index)`` per stage-2 ROI crop (:func:`roi_crops`, one organ at a time), for
    the regional stage; an organ absent from the training cases is skipped with a warning."""
    labels = tuple(data.card.labels)
    out: dict[str, list] = {"train": [], "val": []}
    for organ in targets:
        try:
            crops = roi_crops(data, [organ], spacing, margin_mm)
        except MedsegError:
            log.warning("regional stage: no training crop for %s, skipped", organ)
            continue
        for part in out:
            out[part] += [(c["image"], c["label"], labels.index(organ)) for c in getattr(crops, part)]
    if not out["train"]:
        raise MedsegError(f"no regional training crop: none of {list(targets)} occurs in the training cases",
                          hint="check [cascade] targets and the label map")
    return out

