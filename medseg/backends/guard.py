"""Accuracy guard: how much two label maps of the same image differ.

Used to accept a faster backend or precision only when its labels match PyTorch fp32: per-label Dice
between the two maps, and the fraction of voxels whose label changed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

GUARD_DICE = 0.999  # a default backend must keep every case's per-label Dice at or above this


@dataclass(frozen=True)
class LabelAgreement:
    """Per-label Dice (labels present in either map) and the fraction of voxels that differ."""

    dice: dict[int, float] = field(default_factory=dict)
    changed_fraction: float = 0.0
    voxels: int = 0

    @property
    def min_dice(self) -> float:
        """The worst label's Dice (1.0 when neither map has a foreground label)."""
        return min(self.dice.values(), default=1.0)

    def passes(self, threshold: float = GUARD_DICE) -> bool:
        """True when every label's Dice is at least ``threshold``."""
        return self.min_dice >= threshold


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def compare_label_maps(a, b, labels: Iterable[int] | None = None, *, include_background: bool = False
                       ) -> LabelAgreement:
    """Compare two integer label maps of the same shape (numpy arrays or tensors).

    Args:
        a, b: label maps (e.g. PyTorch fp32 and OpenVINO bf16 predictions of one case).
        labels: the labels to score; default: every label present in either map.
        include_background: also score label 0 when ``labels`` is not given.
    """
    a, b = _array(a), _array(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    if labels is None:
        labels = np.union1d(np.unique(a), np.unique(b)).tolist()
        if not include_background:
            labels = [v for v in labels if v != 0]
    dice = {}
    for value in labels:
        in_a, in_b = a == value, b == value
        total = int(in_a.sum()) + int(in_b.sum())
        dice[int(value)] = 1.0 if total == 0 else 2.0 * int(np.logical_and(in_a, in_b).sum()) / total
    changed = float(np.mean(a != b)) if a.size else 0.0
    return LabelAgreement(dice=dice, changed_fraction=changed, voxels=int(a.size))
