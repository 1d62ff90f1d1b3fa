"""What a prediction is, apart from the engine that makes it: the user's options, the result, and which
weights made it. Its own module (no MONAI, no model zoo) so the nnU-Net folder and TotalSegmentator
predictors and the batch path share these types without importing the zoo's predictor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from monai.data import MetaTensor

    from medseg.inference.postprocess import PostprocessSpec
    from medseg.io.volume import Volume


@dataclass(frozen=True)
class ModelInfo:
    """Which weights produced a prediction (recorded in every provenance sidecar)."""

    name: str
    tag: str | None = None
    weights_sha256: str | None = None
    weights_file: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.name}.{self.tag}" if self.tag else self.name


@dataclass(frozen=True)
class PredictOptions:
    """User-facing settings. ``tta=None``: the card's TTA policy, else mirroring on (as nnU-Net; the shipped
    model's card Dice includes it) except on a CPU for large scans (:func:`~medseg.inference.preflight.
    default_tta`); ``fast``: overlap <= 0.25, no TTA."""

    overlap: float = 0.5
    tta: bool | None = None
    fast: bool = False
    batch_size: int | None = None
    device: str = "auto"
    amp: bool = True
    probabilities: bool = False
    postprocess: PostprocessSpec | None = None   # None: the card's
    accumulate: str = "auto"
    threads: int | None = None
    threshold: float | None = None   # sigmoid/regression foreground probability; None: the card's (else 0.5)
    save_soft: bool | None = None    # regression (SAUNA) models: keep the soft map; None: the card's
    max_voxels: int | None = None    # refuse scans whose resampled grid is larger; None: from free memory
    force: bool = False              # run scans the preflight would refuse (size, field of view, modality)
    crop: str | None = None          # "body", "nonzero" or "none" (medseg.inference.crop); None: the card's
    quality: bool = True             # per-structure quality estimates (medseg.quality) in Prediction.quality
    flag_below: float = 0.8          # flag structures whose predicted Dice is below this


@dataclass
class Prediction:
    """A label map in the input's geometry, plus what it took to make it."""

    labels: MetaTensor | Volume              # (1, *input spatial), integer, input affine (the image's type)
    label_names: tuple[str, ...]             # index = label value
    probabilities: torch.Tensor | None = None  # (C, *input spatial) float16, same grid
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    soft: torch.Tensor | None = None         # regression models, save_soft: (K, *input spatial) float32 p in [0, 1]
    quality: dict[str, Any] | None = None    # {label name: {"predicted_dice", "flag", "signals"}} (medseg.quality)
