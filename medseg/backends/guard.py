"""Accuracy guard: how much two label maps of the same image differ.

Used to accept a faster backend or precision only when its labels match PyTorch fp32: per-label Dice
between the two maps, and the fraction of voxels whose label changed.

Small labels: one flipped voxel of a 3-voxel label is Dice 0.83, so the plain per-label minimum refuses a
runtime for rounding noise on structures that barely appear in the checked windows. The run-time guard
(:meth:`LabelAgreement.passes_guard`) therefore counts a label's disagreement against at least
:data:`GUARD_MIN_VOXELS` voxels: its guard Dice is ``1 - mismatched / max(|A| + |B|, 2 * GUARD_MIN_VOXELS)``
(``mismatched = |A| + |B| - 2 |A and B|``), which is the Dice for labels of ``GUARD_MIN_VOXELS`` voxels or
more, and for smaller ones allows the same absolute number of changed voxels as a label of that size:
with the defaults, one voxel (a 1000-voxel label at Dice 0.999). A runtime that is really wrong changes far
more than that (``tests/nnunet/test_guard_policy.py`` perturbs a network's weights and checks the refusal).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

GUARD_DICE = 0.999  # a default backend must keep every case's per-label Dice at or above this
GUARD_MIN_VOXELS = 1000  # labels smaller than this are judged by their changed voxels, as a label of this size


@dataclass(frozen=True)
class LabelAgreement:
    """Per-label Dice (labels present in either map) and the fraction of voxels that differ."""

    dice: dict[int, float] = field(default_factory=dict)
    changed_fraction: float = 0.0
    voxels: int = 0
    sizes: dict[int, int] = field(default_factory=dict)        # |A| + |B| per label
    mismatched: dict[int, int] = field(default_factory=dict)   # |A| + |B| - 2 |A and B| per label

    @property
    def min_dice(self) -> float:
        """The worst label's Dice (1.0 when neither map has a foreground label)."""
        return min(self.dice.values(), default=1.0)

    def passes(self, threshold: float = GUARD_DICE) -> bool:
        """True when every label's Dice is at least ``threshold``."""
        return self.min_dice >= threshold

    def guard_dice(self, min_voxels: int = GUARD_MIN_VOXELS) -> dict[int, float]:
        """Per-label Dice with the denominator floored at ``2 * min_voxels`` (see the module doc)."""
        return {k: 1.0 - self.mismatched.get(k, 0) / max(self.sizes.get(k, 0), 2 * min_voxels, 1)
                for k in self.dice}

    def min_guard_dice(self, min_voxels: int = GUARD_MIN_VOXELS) -> float:
        """The worst label's :meth:`guard_dice` (1.0 when neither map has a foreground label)."""
        return min(self.guard_dice(min_voxels).values(), default=1.0)

    def passes_guard(self, threshold: float = GUARD_DICE, min_voxels: int = GUARD_MIN_VOXELS) -> bool:
        """The run-time guard's rule: every label's :meth:`guard_dice` at least ``threshold``."""
        return self.min_guard_dice(min_voxels) >= threshold


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
    dice, sizes, mismatched = {}, {}, {}
    for value in labels:
        in_a, in_b = a == value, b == value
        total = int(in_a.sum()) + int(in_b.sum())
        both = int(np.logical_and(in_a, in_b).sum())
        dice[int(value)] = 1.0 if total == 0 else 2.0 * both / total
        sizes[int(value)], mismatched[int(value)] = total, total - 2 * both
    changed = float(np.mean(a != b)) if a.size else 0.0
    return LabelAgreement(dice=dice, changed_fraction=changed, voxels=int(a.size), sizes=sizes,
                          mismatched=mismatched)
