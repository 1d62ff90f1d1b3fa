"""``evaluate(pred, ref)``: metrics of predictions against references, case by case, in parallel processes.

PRED and REF are two label files, two folders matched by case name, or two arrays. The result holds one
row per case and label, a per-label summary and the definitions of every number; it writes JSON, CSV
and the HTML report.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

import medseg
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.metrics import CONVENTIONS, EMPTY_RULE, compute_metrics, definitions
from medseg.reports.cases import match_cases
from medseg.reports.labels import (
    embedded_label_names,
    label_name,
    names_from_dataset_json,
    parse_labels,
    plural,
)
from medseg.reports.loading import (
    LabelMap,
    check_geometry,
    load_label_map,
    to_label_array,
)
from medseg.reports.summary import AGGREGATION, summarize

logger = get_logger(__name__)

ROW_KEYS = ("case", "label", "label_name", "dice", "iou", "hd", "hd95", "assd", "nsd", "empty_reference",
            "empty_prediction", "precision", "sensitivity", "msd_pred_to_ref", "msd_ref_to_pred", "volume_ref",
            "volume_pred", "volume_difference", "distances_infinite")

Progress = Callable[[int, int, str], None]


@dataclass
class EvaluationResult:
    """Rows (one per case and label, JSON-ready), the per-label summary and the metric definitions."""

    cases: list[dict[str, Any]]
    summary: dict[str, Any]
    definitions: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, tuple[Any, Any]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"cases": [...], "summary": {...}, "definitions": {...}}``; infinite distances are None."""
        return {"cases": self.cases, "summary": self.summary, "definitions": self.definitions}

    def write_json(self, path: str | PathLike) -> Path:
        from medseg.reports.export import write_json

        return write_json(self, path)

    def write_csv(self, path: str | PathLike) -> Path:
        from medseg.reports.export import write_csv

        return write_csv(self, path)

    def write_report(self, folder: str | PathLike, *, viewer: bool = True) -> Path:
        """metrics.csv, summary.json and a self-contained report.html in ``folder``; returns the HTML path.
        ``viewer``: embed the interactive viewer for the worst cases (adds about 2.3 MB)."""
        from medseg.reports.html import write_report

        return write_report(self, folder, viewer=viewer)

    def load_case(self, case: str) -> tuple[LabelMap, LabelMap]:
        """(prediction on the reference grid, reference) of one case, for figures."""
        pred, ref = self.sources[case]
        if isinstance(pred, LabelMap):
            return pred, ref
        threshold = self.settings.get("threshold")
        pred_map, ref_map = load_label_map(pred, threshold=threshold), load_label_map(ref, threshold=threshold)
        return check_geometry(pred_map, ref_map, resample=self.settings.get("resample_to_reference", False))[0], ref_map


def evaluate(
    pred: str | PathLike | Any,
    ref: str | PathLike | Any,
    *,
    labels: str | Sequence[int | str] | None = None,
    label_names: Mapping[int, str] | str | PathLike | None = None,
    tolerance: float = 1.0,
    convention: str = "monai",
    spacing: Sequence[float] | None = None,
    resample_to_reference: bool = False,
    threshold: float | None = None,
    workers: int = 1,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate predictions against references: Dice, IoU, precision, sensitivity, volumes, HD, HD95, ASSD,
    directed mean surface distances and NSD per case and label.

    Args:
        pred: prediction label file, folder of files, or array (numpy, torch, MetaTensor).
        ref: reference label file, folder (matched by case name) or array.
        labels: labels to evaluate, as values or names (``"1,2"``, ``["liver"]``); default: every label
            found in any prediction or reference (named labels found nowhere are listed in the summary).
        label_names: ``{value: name}``, or a dataset.json path (MSD or nnU-Net v2 style).
        tolerance: NSD tolerance in mm.
        convention: ``"monai"`` or ``"surface-distance"`` (see :func:`medseg.metrics.definitions`).
        spacing: voxel size in mm for every map: plain arrays (default: from a MetaTensor's affine, else
            1 mm) and files whose stored size is wrong or absent (PNG/JPEG hold none: 1 per pixel), e.g.
            ``(0.14, 0.14)`` for chest X-rays; it must have one value per spatial axis.
        resample_to_reference: resample predictions on another grid onto the reference (nearest
            neighbour) instead of raising.
        threshold: binarise float (probability) maps: voxels >= threshold become label 1.
        workers: parallel processes over cases (1: in this process).
        progress: called as ``progress(done, total, case)`` after each case.

    Example:
        >>> result = evaluate("preds/", "labelsTr/", label_names="dataset.json", tolerance=2.0)
        >>> result.summary["labels"]["1"]["metrics"]["dice"]["mean"]
        >>> result.write_report("report/")
    """
    if convention not in CONVENTIONS:
        raise MedsegError(f"unknown convention {convention!r}", hint=f"use one of: {', '.join(CONVENTIONS)}")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise MedsegError(f"tolerance must be a finite number of mm >= 0, got {tolerance}")
    names = _names(label_names)
    from_files = label_names is None and _is_path(pred) and _is_path(ref)
    wanted = None if from_files else parse_labels(labels, names)  # names may come from the files
    if spacing is not None:
        spacing = tuple(float(v) for v in spacing)
        if not all(math.isfinite(v) and v > 0 for v in spacing):
            raise MedsegError(f"spacing must be positive numbers of mm, got {spacing}")
    settings = {"labels": wanted, "tolerance": float(tolerance), "convention": convention, "threshold": threshold,
                "resample_to_reference": resample_to_reference, "spacing": spacing}
    if _is_path(pred) and _is_path(ref):
        matched = match_cases(pred, ref)
        tasks = [(case, p, r) for case, p, r in matched.pairs]
        if from_files:  # no model or dataset.json: the names medseg (or TotalSegmentator) stored
            names = _names_in_files([p for _, p, _ in tasks])
            settings["labels"] = parse_labels(labels, names)
        sources: dict[str, tuple[Any, Any]] = {case: (p, r) for case, p, r in tasks}
        unmatched = {"cases_only_in_prediction": matched.only_in_prediction,
                     "cases_only_in_reference": matched.only_in_reference}
        for key, cases in unmatched.items():
            if cases:
                logger.warning("%s %s: %s", plural(len(cases), "case"), key.replace("cases_", "").replace("_", " "),
                               ", ".join(cases[:10]))
    elif _is_path(pred) or _is_path(ref):
        raise MedsegError("give both prediction and reference as paths, or both as arrays")
    else:
        pred_map, ref_map = _array_map(pred, spacing, threshold), _array_map(ref, spacing, threshold)
        pred_map, _ = check_geometry(pred_map, ref_map, resample=resample_to_reference)
        tasks = [("case", pred_map, ref_map)]
        sources = {"case": (pred_map, ref_map)}
        unmatched = {"cases_only_in_prediction": [], "cases_only_in_reference": []}
    outcomes = _run(tasks, settings, workers, progress)
    return _assemble(outcomes, names, settings, unmatched, sources, pred, ref)


def evaluate_case(case: str, pred: Any, ref: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics of one case (runs in a worker process): rows for the wanted or present labels, and facts."""
    threshold = settings["threshold"]
    pred_map = pred if isinstance(pred, LabelMap) else load_label_map(pred, threshold=threshold)
    ref_map = ref if isinstance(ref, LabelMap) else load_label_map(ref, threshold=threshold)
    pred_map, resampled = check_geometry(pred_map, ref_map, resample=settings["resample_to_reference"])
    spacing = settings.get("spacing") or ref_map.spacing
    if len(spacing) != ref_map.array.ndim:
        raise MedsegError(f"spacing {tuple(spacing)} does not fit the {ref_map.array.ndim}D reference of case {case}",
                          path=ref if not isinstance(ref, LabelMap) else None,
                          hint=f"give {ref_map.array.ndim} values, one per spatial axis")
    metrics = compute_metrics(pred_map.array, ref_map.array, spacing, settings["labels"],
                              tolerance=settings["tolerance"], convention=settings["convention"])
    # with the default (all present labels), these are every label of each map
    in_pred = [m.label for m in metrics if not m.empty_prediction]
    in_ref = [m.label for m in metrics if not m.empty_reference]
    return {"case": case, "metrics": [m.to_dict() for m in metrics], "labels_pred": in_pred, "labels_ref": in_ref,
            "resampled": resampled, "ndim": ref_map.array.ndim}


def _run_one(args: tuple) -> dict[str, Any]:
    return evaluate_case(*args)


def _run(tasks: list[tuple], settings: dict, workers: int, progress: Progress | None) -> list[dict[str, Any]]:
    total, outcomes = len(tasks), []
    workers = max(1, min(int(workers), total))
    if workers == 1:
        for done, (case, p, r) in enumerate(tasks, 1):
            outcomes.append(evaluate_case(case, p, r, settings))
            if progress:
                progress(done, total, case)
        return outcomes
    with ProcessPoolExecutor(workers, mp_context=_process_context()) as pool:
        futures = {pool.submit(_run_one, (case, p, r, settings)): case for case, p, r in tasks}
        for done, future in enumerate(as_completed(futures), 1):
            try:
                outcomes.append(future.result())
            except BaseException:
                for other in futures:
                    other.cancel()
                raise
            if progress:
                progress(done, total, futures[future])
    return sorted(outcomes, key=lambda o: o["case"])


def _process_context():
    """Fresh worker processes without re-importing torch in each: a fork server that imported this module
    once (fork from a process that never ran torch ops is safe), or spawn where there is no fork server."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _assemble(outcomes, names, settings, unmatched, sources, pred, ref) -> EvaluationResult:
    wanted = settings["labels"]
    found = {v for o in outcomes for v in o["labels_pred"] + o["labels_ref"]}
    not_found = sorted(v for v in names if v > 0 and v not in found)
    requested_absent: list[int] = []
    if wanted is None:  # named labels absent from every map would only add rows of "both empty"
        wanted = sorted(found)
    else:  # a requested label in no file has nothing to score: Dice 1 ("both empty") would be a lie
        requested_absent = [v for v in wanted if v not in found]
        wanted = [v for v in wanted if v in found]
        if requested_absent:
            logger.warning("requested label(s) %s occur in no prediction and no reference: reported as absent, "
                           "not scored", ", ".join(f"{v} ({label_name(v, names)})" for v in requested_absent))
    label_table = {v: label_name(v, names) for v in wanted}
    rows = []
    for outcome in outcomes:
        by_label = {m["label"]: m for m in outcome["metrics"]}
        for value in wanted:
            m = by_label.get(value) or _both_empty(value)
            rows.append({key: (outcome["case"] if key == "case" else label_table[value] if key == "label_name"
                               else m[key]) for key in ROW_KEYS})
    only_pred: dict[str, list[str]] = {}
    for outcome in outcomes:
        for value in sorted(set(outcome["labels_pred"]) - set(outcome["labels_ref"])):
            only_pred.setdefault(str(value), []).append(outcome["case"])
    if only_pred:
        logger.warning("labels in a prediction but not in its reference: %s",
                       "; ".join(f"{v} in {plural(len(c), 'case')}" for v, c in only_pred.items()))
    ndim = outcomes[0]["ndim"] if outcomes else 3
    summary = {
        "n_cases": len(outcomes),
        "convention": settings["convention"],
        "tolerance_mm": settings["tolerance"],
        "spacing_mm": list(settings["spacing"]) if settings.get("spacing") else "from each reference",
        "volume_unit": "mL" if ndim == 3 else "mm2",
        "labels": summarize(rows, label_table),
        "aggregation": AGGREGATION,
        "empty_masks": EMPTY_RULE,
        **unmatched,
        "labels_only_in_prediction": only_pred,
        "named_labels_not_found": [] if settings["labels"] else not_found,
        "requested_labels_not_found": {str(v): label_name(v, names) for v in requested_absent},
        "resampled_cases": [o["case"] for o in outcomes if o["resampled"]],
        "prediction": str(pred) if _is_path(pred) else "array",
        "reference": str(ref) if _is_path(ref) else "array",
        "medseg_version": medseg.__version__,
    }
    return EvaluationResult(rows, summary, definitions(settings["convention"], settings["tolerance"]),
                            settings, sources)


def _names_in_files(paths: Sequence[Path]) -> dict[int, str]:
    """``{value: name}`` stored in the prediction files (the first file that has any wins per value)."""
    names: dict[int, str] = {}
    for path in paths:
        for value, name in embedded_label_names(path).items():
            names.setdefault(value, name)
    if names:
        logger.info("label names from the prediction files: %s",
                    ", ".join(f"{v}={n}" for v, n in sorted(names.items())[:10]))
    return names


def _both_empty(value: int) -> dict[str, Any]:
    """The row of a label absent from both maps of a case (the empty-mask rule, nothing to compute)."""
    [m] = compute_metrics(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), labels=[value])
    return m.to_dict()


def _names(label_names: Mapping[int, str] | str | PathLike | None) -> dict[int, str]:
    if label_names is None:
        return {}
    if isinstance(label_names, Mapping):
        return {int(k): str(v) for k, v in label_names.items()}
    return names_from_dataset_json(label_names)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _array_map(value: Any, spacing: Sequence[float] | None, threshold: float | None) -> LabelMap:
    """A LabelMap from a numpy array, torch tensor or MetaTensor (channel-first ``(1, *spatial)`` allowed)."""
    affine = getattr(value, "affine", None)
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if array.ndim in (3, 4) and array.shape[0] == 1 and (array.ndim == 4 or affine is not None):
        array = array[0]
    n = array.ndim
    if n not in (2, 3):
        raise MedsegError(f"expected a 2D or 3D label array, got shape {array.shape}")
    matrix = np.eye(4)
    if spacing is not None:
        if len(spacing) != n:
            raise MedsegError(f"spacing {tuple(spacing)} does not fit a {n}D array")
        matrix[:n, :n] = np.diag([float(s) for s in spacing])
    elif affine is not None:
        matrix = np.asarray(affine, dtype=np.float64)
    return LabelMap(to_label_array(array, None, threshold), matrix)
