"""Map quality signals to a predicted Dice: a ridge-regression score, then isotonic regression on it.

The score is a linear combination of standardised signals (:data:`FEATURES`; a missing signal counts as
its training mean); the isotonic step (pool-adjacent-violators) turns the score into Dice, monotone by
construction, stored as knots and applied with linear interpolation (clamped at both ends). Both steps
are fitted on validation cases of the training run (:mod:`medseg.quality.fit`); the result is a small
JSON-ready dict kept in ``card.quality["calibration"]``.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: the calibration's inputs, in order: ``log1m_X`` = log(1 - X) of an agreement or confidence in [0, 1] (small
#: disagreements matter: 0.99 vs 0.95 TTA Dice is a large step), ``abs_X`` = |X| of a z-score (too large and
#: too small are both bad), ``neg_X`` = max(0, -X) of a z-score where only one side is bad (a loss of
#: sharpness or contrast); the rest as the signal. A stored calibration names its own features (any such
#: name of a signal); these are what :func:`fit` uses by default.
FEATURES = ("log1m_scan_tta_dice", "log1m_scan_soft_dice", "neg_gradient_z", "gradient_z", "neg_intensity_std_z",
            "abs_volume_z", "log1m_tta_dice", "log1m_soft_dice", "abs_intensity_z", "extra_components",
            "touches_border")
RIDGE = 100.0   # chosen by 5-fold cross-validation on the fitting cases (medseg.quality.fit)
_LOG_FLOOR = 1e-3


def feature_vector(signals: Mapping[str, Any], features: Sequence[str] = FEATURES) -> list[float | None]:
    """The calibration's inputs from one structure's signals (None where a signal is missing)."""
    def get(name: str) -> float | None:
        prefix, _, base = name.partition("_") if name.startswith(("abs_", "log1m_", "neg_")) else ("", "", name)
        value = signals.get(base)
        if value is None:
            return None
        if prefix == "abs":
            return abs(float(value))
        if prefix == "neg":
            return max(0.0, -float(value))
        if prefix == "log1m":
            return float(np.log(max(1.0 - float(value), _LOG_FLOOR)))
        return float(value)
    return [get(name) for name in features]


@dataclass(frozen=True)
class Calibration:
    """A fitted mapping from :data:`FEATURES` to predicted Dice."""

    center: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    knots_score: tuple[float, ...]
    knots_dice: tuple[float, ...]
    features: tuple[str, ...] = FEATURES
    offsets: Mapping[str, float] = field(default_factory=dict)   # per structure: its mean residual

    def score(self, rows: Sequence[Sequence[float | None]], structures: Sequence[str] | None = None) -> np.ndarray:
        """Linear score of rows of feature values (missing = the training mean), plus each row's structure
        offset (structures differ in how hard they are; unknown ones: 0)."""
        x = _standardise(rows, np.asarray(self.center), np.asarray(self.scale))
        score = x @ np.asarray(self.weights) + self.intercept
        if structures is not None:
            score = score + np.array([self.offsets.get(str(s), 0.0) for s in structures])
        return score

    def predict(self, rows: Sequence[Sequence[float | None]], structures: Sequence[str] | None = None
                ) -> np.ndarray:
        """Predicted Dice in [0, 1] per row (``structures``: the row's label name, for its offset)."""
        return np.clip(np.interp(self.score(rows, structures), self.knots_score, self.knots_dice), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "ridge score + isotonic regression", "features": list(self.features),
                "center": _r(self.center), "scale": _r(self.scale), "weights": _r(self.weights),
                "intercept": round(self.intercept, 6), "offsets": {k: round(float(v), 6) for k, v in self.offsets.items()},
                "knots": {"score": _r(self.knots_score), "dice": _r(self.knots_dice)}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        features = tuple(data.get("features", FEATURES))
        if not all(isinstance(f, str) and f for f in features) or len(features) != len(data["weights"]):
            raise ValueError(f"calibration features {features} do not match its {len(data['weights'])} weights")
        knots = data["knots"]
        return cls(tuple(data["center"]), tuple(data["scale"]), tuple(data["weights"]), float(data["intercept"]),
                   tuple(knots["score"]), tuple(knots["dice"]), features, dict(data.get("offsets") or {}))


def fit(rows: Sequence[Sequence[float | None]], dice: Sequence[float], *, ridge: float = RIDGE,
        structures: Sequence[str] | None = None, features: Sequence[str] = FEATURES) -> Calibration:
    """Fit the ridge score (standardised features), a per-structure offset (``structures``: each row's label
    name; the mean residual of its rows) and the isotonic map from score to Dice."""
    raw = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
    with warnings.catch_warnings():   # a signal missing everywhere (e.g. no TTA): mean 0, scale 1
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmean(raw, axis=0)
        scale = np.nanstd(raw, axis=0)
    center = np.where(np.isfinite(center), center, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 1e-9), scale, 1.0)
    x = _standardise(rows, center, scale)
    y = np.clip(np.asarray(dice, dtype=np.float64), 0.0, 1.0)
    intercept = float(y.mean())
    a = x.T @ x + ridge * np.eye(x.shape[1])
    weights = np.linalg.solve(a, x.T @ (y - intercept))
    score = x @ weights + intercept
    offsets: dict[str, float] = {}
    if structures is not None:
        names = np.asarray([str(s) for s in structures])
        offsets = {name: float((y - score)[names == name].mean()) for name in sorted(set(names))}
        score = score + np.array([offsets[n] for n in names])
    knots_score, knots_dice = isotonic_knots(score, y)
    return Calibration(tuple(center), tuple(scale), tuple(weights), intercept, knots_score, knots_dice,
                       tuple(features), offsets=offsets)


def isotonic_knots(x: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pool-adjacent-violators: the non-decreasing least-squares fit of ``y`` on ``x``, as knots
    (block mean of x, block value) for interpolation."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    blocks: list[list[float]] = []   # [sum y, count, sum x]
    for xv, yv in zip(xs, ys):
        blocks.append([yv, 1.0, xv])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, n, sx = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
            blocks[-1][2] += sx
    kx = tuple(float(b[2] / b[1]) for b in blocks)
    ky = tuple(float(b[0] / b[1]) for b in blocks)
    return kx, ky


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); nan for fewer than 3 pairs or a constant side."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if x.size < 3:
        return float("nan")
    ra, rb = _ranks(x), _ranks(y)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(v.size, dtype=float)
    ranks[order] = np.arange(v.size, dtype=float)
    for value in np.unique(v):  # ties share their mean rank
        tied = v == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def _standardise(rows, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    raw = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
    raw = raw.reshape(-1, len(center))
    raw = np.where(np.isfinite(raw), raw, center)
    return (raw - center) / scale


def _r(values) -> list[float]:
    return [round(float(v), 6) for v in values]
