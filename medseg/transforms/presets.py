"""Preprocessing pipelines built from a model card (MONAI dict transforms, key ``"image"``).

Order: orientation to the card's frame (a flip/permute, exact) -> float32 copy -> resampling to the
card's spacing -> intensity scheme. 2D images (PNG, JPEG, single-slice TIFF) have no patient frame and
usually no real spacing, so only the intensity step applies to them.
"""
from __future__ import annotations

import torch
from monai.transforms import Compose, MapTransform, Orientationd

from medseg.core.card import Intensity, ModelCard, target_spacing
from medseg.core.errors import MedsegError
from medseg.transforms.ct_normalize import CTNormalized
from medseg.transforms.ensure_float import EnsureFloatd
from medseg.transforms.minmax_scale import MinMaxScaled
from medseg.transforms.percentile_scale import PercentileScaled
from medseg.transforms.resample_spacing import ResampleToSpacingd
from medseg.transforms.zscore import ZScoreNormalized

IMAGE = "image"
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def intensity_transform(card: ModelCard, key: str = IMAGE, *, inplace: bool = False) -> MapTransform | None:
    """The card's intensity scheme as a dict transform (None for ``kind="none"``)."""
    return _intensity(card.intensity, key, inplace=inplace, owner=card.name)


def apply_intensity(image: torch.Tensor, spec: Intensity) -> torch.Tensor:
    """``image`` (C, *S) normalised by the intensity scheme ``spec`` (a new float32 tensor); the same
    transforms as :func:`build_preprocessing` (e.g. for a cascade's ROI crops)."""
    transform = _intensity(spec, IMAGE, inplace=False, owner="card")
    return image.float() if transform is None else transform({IMAGE: image})[IMAGE]


def _intensity(spec: Intensity, key: str, *, inplace: bool, owner: str) -> MapTransform | None:
    if spec.kind == "zscore":
        return ZScoreNormalized(key, spec.low, spec.high, inplace=inplace, nonzero=spec.nonzero)
    if spec.kind == "ct":
        return CTNormalized(key, spec.low, spec.high, spec.mean, spec.std, inplace=inplace)
    if spec.kind == "percentile":
        return PercentileScaled(key, spec.low, spec.high, inplace=inplace)
    if spec.kind == "minmax":
        return MinMaxScaled(key, inplace=inplace)
    if spec.kind == "none":
        return None
    raise MedsegError(f"model card {owner!r}: unknown intensity kind {spec.kind!r}")


def build_preprocessing(card: ModelCard, *, spatial_dims: int = 3, key: str = IMAGE,
                        label_key: str | None = None) -> Compose:
    """The preprocessing for ``card`` applied to an image with ``spatial_dims`` axes (2 or 3): prediction,
    training and validation all use it. ``label_key``: a label map reoriented and resampled with the image
    (nearest neighbour), as training needs."""
    steps: list[MapTransform] = []
    keys = (key,) if label_key is None else (key, label_key)
    if spatial_dims == 3 and card.orientation:
        steps.append(Orientationd(keys, axcodes=card.orientation, labels=RAS_LABELS))
    steps.append(EnsureFloatd(key))
    spacing = target_spacing(card) if spatial_dims == 3 else None
    if spacing is not None:
        steps.append(ResampleToSpacingd(keys, spacing, modes=("linear", "nearest")[:len(keys)]))
    intensity = intensity_transform(card, key, inplace=True)  # EnsureFloatd made an owned copy
    if intensity is not None:
        steps.append(intensity)
    return Compose(steps)
