"""Per-structure quality estimates: how good is each predicted structure probably?

Signals are gathered while the engine runs (:mod:`medseg.quality.probe`: agreement between the mirrored
TTA passes, confidence and entropy inside each structure and on its boundary, intensity inside it) and
from the finished label map (:mod:`medseg.quality.signals`: volume, components, border contact), compared
with the training distribution stored in the model card (``card.quality["reference"]``). A card with a
calibration (``card.quality["calibration"]``, :mod:`medseg.quality.calibration`) maps them to a predicted
Dice; scans outside the model's domain (modality, field of view, intensity) are always flagged
(:mod:`medseg.quality.estimate`). ``python -m medseg.quality.fit`` reproduces the shipped calibration.

Import the submodules you need (``medseg.quality.estimate``, ``.calibration``, ...): this package imports
nothing itself, so ``medseg evaluate`` can read sidecar estimates without loading the inference stack.
"""
