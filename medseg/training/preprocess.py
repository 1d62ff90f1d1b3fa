"""Bring a training case to the model's frame: orientation, spacing, intensity (as in prediction)."""
from __future__ import annotations

import numpy as np
import torch

from medseg.core.card import Intensity, ModelCard
from medseg.io import read_image


def normalize_intensity(image: torch.Tensor, intensity: Intensity) -> torch.Tensor:
    """Apply the card's intensity scheme to a float tensor (per channel for per-image schemes)."""
    x = image.float()
    kind = intensity.kind
    if kind == "none":
        return x
    out = torch.empty_like(x)
    for c in range(x.shape[0]):
        ch = x[c]
        if kind == "ct":
            ch = ch.clamp(intensity.low, intensity.high)
            out[c] = (ch - (intensity.mean or 0.0)) / max(intensity.std or 1.0, 1e-8)
        elif kind == "zscore":
            if intensity.low is not None and intensity.high is not None:
                lo, hi = np.percentile(ch.numpy(), [intensity.low, intensity.high])
                ch = ch.clamp(float(lo), float(hi))
            out[c] = (ch - ch.mean()) / max(float(ch.std()), 1e-8)
        elif kind == "percentile":
            lo, hi = np.percentile(ch.numpy(), [intensity.low or 0.5, intensity.high or 99.5])
            out[c] = (ch.clamp(float(lo), float(hi)) - lo) / max(hi - lo, 1e-8)
        elif kind == "minmax":
            lo, hi = float(ch.min()), float(ch.max())
            out[c] = (ch - lo) / max(hi - lo, 1e-8)
        else:
            raise ValueError(f"unknown intensity scheme {kind!r}")
    return out


def load_case(case: dict, card: ModelCard) -> dict:
    """Read one image/label pair and return ``{"image": float32 (C,*S), "label": int64 (1,*S), "case": name}``
    resampled to ``card.spacing`` and reoriented to ``card.orientation`` (labels by nearest neighbour)."""
    from monai.transforms import Orientationd, Spacingd

    data = {"image": read_image(case["image"], allow_multichannel=True), "label": read_image(case["label"])}
    data["image"] = data["image"].float()
    if card.orientation:
        data = Orientationd(keys=("image", "label"), axcodes=card.orientation, labels=(("L", "R"), ("P", "A"), ("I", "S")))(data)
    if card.spacing is not None and card.spatial_dims == 3:
        spacing = np.asarray(data["image"].meta.get("spacing") or data["image"].pixdim[:3])
        if not np.allclose(spacing, card.spacing, atol=1e-3):
            data = Spacingd(keys=("image", "label"), pixdim=card.spacing, mode=("bilinear", "nearest"))(data)
    image = normalize_intensity(data["image"].as_tensor(), card.intensity)
    label = data["label"].as_tensor().round().to(torch.int64)
    return {"image": image.contiguous(), "label": label.contiguous(), "case": case["case"]}
