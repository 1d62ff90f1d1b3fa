"""Per-structure quality estimates: how good is each predicted structure probably?

Signals are gathered while the engine runs (:mod:`medseg.quality.probe`: agreement between the mirrored
TTA passes, confidence and entropy inside each structure and on its boundary, intensity inside it) and
from the finished label map (:mod:`medseg.quality.signals`: volume, components, border contact), compared
with the training distribution stored in the model card (``card.quality["reference"]``). A card with a
calibration (``card.quality["calibration"]``, :mod:`medseg.quality.calibration`) maps them to a predicted
Dice; scans outside the model's domain (modality, field of view, intensity) are always flagged
(:mod:`medseg.quality.estimate`). ``python -m medseg.quality.fit`` reproduces the shipped calibration.
"""
from __future__ import annotations

from medseg.quality.estimate import DEFAULT_FLAG_BELOW, assess, flagged_structures
from medseg.quality.probe import QualityProbe

__all__ = ["DEFAULT_FLAG_BELOW", "QualityProbe", "assess", "flagged_structures"]
