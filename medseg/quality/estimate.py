"""Combine the signals of one prediction into ``{"<label name>": {"predicted_dice", "flag", "signals"}}``.

- ``signals``: the raw signals (:mod:`medseg.quality.probe`, :mod:`medseg.quality.signals`), their
  comparison with the card's training reference, and ``out_of_domain`` (why the scan is outside what the
  model was made for: ``modality``, ``field_of_view`` from the preflight checks, ``intensity`` when the mean
  normalised intensity inside the structure is more than :data:`INTENSITY_OOD_Z` training SDs away,
  ``volume`` when its log volume is more than :data:`VOLUME_OOD_Z` SDs away).
- ``predicted_dice``: the card's calibration applied to the signals (None without a calibration); an
  expected structure that is missing predicts 0; out of domain caps it at :data:`OOD_CAP` whatever the
  network output.
- ``flag``: predicted Dice below ``flag_below`` (without a calibration: out of domain, or an expected
  structure missing).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from medseg.core.card import ModelCard
from medseg.quality.calibration import Calibration, feature_vector
from medseg.quality.signals import compare_to_reference, shape_signals

DEFAULT_FLAG_BELOW = 0.8
OOD_CAP = 0.2
INTENSITY_OOD_Z = 6.0
VOLUME_OOD_Z = 8.0       # log volume this many training SDs away (about 5x the typical hippocampus): absurd
EXPECTED_PRESENT = 0.5   # a structure present in at least this fraction of training cases is expected


def domain_problems(image: torch.Tensor, card: ModelCard) -> list[str]:
    """Why a channel-first scan is outside the model's domain, from the preflight checks (with ``force``,
    so nothing is raised): ``modality`` (CT given to an MR model) and ``field_of_view``."""
    from medseg.inference.preflight import check_field_of_view, check_modality_strict

    problems = []
    if check_modality_strict(image, card, None, force=True):
        problems.append("modality")
    if image.ndim - 1 == 3:
        affine = np.asarray(getattr(image, "affine", np.eye(4)), dtype=np.float64)
        if check_field_of_view(tuple(int(s) for s in image.shape[1:]), affine, card, None, force=True):
            problems.append("field_of_view")
    return problems


def assess(labels: np.ndarray, spacing: Sequence[float], card: ModelCard, names: Sequence[str], *,
           probe: Mapping[int, Mapping[str, Any]] | None = None, domain: Sequence[str] = (),
           flag_below: float = DEFAULT_FLAG_BELOW) -> dict[str, dict[str, Any]]:
    """Quality of every foreground structure of one prediction.

    Args:
        labels: the label map on the model's grid; spacing: that grid's voxel size (mm).
        card: the model card (``card.quality``: ``reference`` and optional ``calibration``).
        names: label names, index = label value.
        probe: per label value, the engine's signals (:meth:`QualityProbe.signals`).
        domain: out-of-domain reasons of the whole scan (:func:`domain_problems`).
    """
    quality = dict(getattr(card, "quality", None) or {})
    reference = dict(quality.get("reference") or {})
    calibration = Calibration.from_dict(quality["calibration"]) if quality.get("calibration") else None
    shapes = shape_signals(labels, spacing, len(names))
    raw = {str(names[v]): {**shapes[v], **dict((probe or {}).get(v, {}))} for v in range(1, len(names))}
    out: dict[str, dict[str, Any]] = {}
    for name, signals in derive(raw, reference).items():
        ref = reference.get(name)
        signals["out_of_domain"] = list(domain) + structure_domain(signals)
        missing = signals["volume_ml"] <= 0 and ref is not None and ref.get("present_fraction", 0) >= EXPECTED_PRESENT
        predicted, flag = decide(signals, calibration, missing=missing, flag_below=flag_below, structure=name)
        out[name] = {"predicted_dice": None if predicted is None else round(predicted, 4), "flag": flag,
                     "signals": {k: _round(v) for k, v in signals.items()}}
    return out


#: signals also given as their mean over the scan's structures (``scan_<name>``): a degraded scan hurts every
#: structure, and the mean of two noisy measurements of it is a better one
SCAN_SIGNALS = ("tta_dice", "soft_dice")


def derive(raw: Mapping[str, Mapping[str, Any]], reference: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per structure name: its raw signals plus their comparison with the training reference
    (:func:`~medseg.quality.signals.compare_to_reference`) and the scan-level means of :data:`SCAN_SIGNALS`."""
    out = {name: {**dict(s), **compare_to_reference(s, reference.get(name))} for name, s in raw.items()}
    for key in SCAN_SIGNALS:
        values = [float(s[key]) for s in out.values() if s.get(key) is not None]
        for s in out.values():
            s[f"scan_{key}"] = float(np.mean(values)) if values else None
    return out


def structure_domain(signals: Mapping[str, Any]) -> list[str]:
    """Out-of-domain reasons of one structure: ``intensity`` / ``volume`` far from the training reference."""
    reasons = []
    z = signals.get("intensity_z")
    if z is not None and abs(z) > INTENSITY_OOD_Z:
        reasons.append("intensity")
    vz = signals.get("volume_z")
    if vz is not None and abs(vz) > VOLUME_OOD_Z:
        reasons.append("volume")
    return reasons


def decide(signals: Mapping[str, Any], calibration: Calibration | None, *, missing: bool = False,
           flag_below: float = DEFAULT_FLAG_BELOW, structure: str | None = None) -> tuple[float | None, bool]:
    """(predicted Dice, flag) of one structure from its signals (``out_of_domain`` among them)."""
    ood = bool(signals.get("out_of_domain"))
    predicted: float | None = None
    if calibration is not None:
        if (signals.get("volume_ml") or 0) <= 0:
            predicted = 0.0 if missing else None
        else:
            names = None if structure is None else [structure]
            predicted = float(calibration.predict([feature_vector(signals, calibration.features)], names)[0])
        if predicted is not None and ood:
            predicted = min(predicted, OOD_CAP)
    flag = (predicted < flag_below) if predicted is not None else (ood or missing)
    return predicted, bool(flag)


def label_map_quality(labels: np.ndarray, affine: np.ndarray, card: ModelCard, names: Sequence[str]
                      ) -> dict[str, dict[str, Any]]:
    """Raw signals of a finished label map, for engines without a probe (nnU-Net folders, TotalSegmentator,
    cascades): per structure ``volume_ml``, ``share``, ``components``, ``touches_border`` on the label map's
    own grid, compared with the card's training reference when it has one. No ``predicted_dice`` (these
    paths carry no calibration); ``flag`` only for an expected structure that is missing."""
    labels = np.asarray(labels)
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)[: labels.ndim]
    reference = dict((getattr(card, "quality", None) or {}).get("reference") or {})
    shapes = shape_signals(labels, spacing, len(names))
    out: dict[str, dict[str, Any]] = {}
    for value in range(1, len(names)):
        if not names[value]:
            continue   # a value the run left out (e.g. a --labels subset)
        ref = reference.get(str(names[value]))
        signals: dict[str, Any] = {**shapes[value], **compare_to_reference(shapes[value], ref), "out_of_domain": []}
        missing = signals["volume_ml"] <= 0 and ref is not None and ref.get("present_fraction", 0) >= EXPECTED_PRESENT
        out[str(names[value])] = {"predicted_dice": None, "flag": bool(missing),
                                  "signals": {k: _round(v) for k, v in signals.items()}}
    return out


def with_label_quality(prediction: Any, predictor: Any) -> Any:
    """``prediction`` with :func:`label_map_quality` as its ``quality`` when its engine gave none and the
    predictor does not turn quality off (``--no-quality``); the batch path calls this for every case."""
    if prediction.quality is not None or not getattr(getattr(predictor, "options", None), "quality", True):
        return prediction
    labels = np.asarray(prediction.labels[0])
    affine = np.asarray(prediction.labels.affine, dtype=np.float64)
    prediction.quality = label_map_quality(labels, affine, predictor.card, prediction.label_names)
    return prediction


def flagged_structures(quality: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Names of the flagged structures of one prediction's quality block."""
    return [name for name, entry in (quality or {}).items() if entry.get("flag")]


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
