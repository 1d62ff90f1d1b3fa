"""Bring a training case to the model's frame: orientation, spacing, intensity (as in prediction)."""
from __future__ import annotations

import numpy as np
import torch

from medseg.core.card import Intensity, ModelCard
from medseg.io import read_image


def normalize_intensity(image: torch.Tensor, intensity: Intensity) -> torch.Tensor:
    """Apply the card's intensity scheme with the very functions prediction uses (``medseg.transforms``),
    so training and inference see identical inputs."""
    from medseg.transforms import ct_normalize, minmax_scale, percentile_scale, zscore

    kind = intensity.kind
    if kind == "none":
        return image.float()
    if kind == "zscore":
        return zscore(image, intensity.low, intensity.high)
    if kind == "ct":
        return ct_normalize(image, intensity.low, intensity.high, intensity.mean, intensity.std)
    if kind == "percentile":
        return percentile_scale(image, intensity.low, intensity.high)
    if kind == "minmax":
        return minmax_scale(image)
    raise ValueError(f"unknown intensity scheme {kind!r}")


def load_case(case: dict, card: ModelCard) -> dict:
    """Read one image/label pair and return ``{"image": float32 (C,*S), "label": int64 (1,*S), "case": name}``
    resampled to ``card.spacing`` and reoriented to ``card.orientation`` (labels by nearest neighbour)."""
    from monai.transforms import Orientationd, Spacingd

    data = {"image": read_image(case["image"], allow_multichannel=True), "label": read_image(case["label"])}
    data["image"] = data["image"].float()
    if card.orientation and card.spatial_dims == 3:   # 2D images (PNG, X-ray) have no RAS frame
        data = Orientationd(keys=("image", "label"), axcodes=card.orientation,
                            labels=(("L", "R"), ("P", "A"), ("I", "S")))(data)
    if card.spacing is not None and card.spatial_dims == 3:
        spacing = np.asarray(data["image"].meta.get("spacing") or data["image"].pixdim[:3])
        if not np.allclose(spacing, card.spacing, atol=1e-3):
            data = Spacingd(keys=("image", "label"), pixdim=card.spacing, mode=("bilinear", "nearest"))(data)
    image = normalize_intensity(data["image"].as_tensor(), card.intensity)
    label = data["label"].as_tensor().round().to(torch.int64)
    return {"image": image.contiguous(), "label": label.contiguous(), "case": case["case"]}
