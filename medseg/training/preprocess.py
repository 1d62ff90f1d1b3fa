"""Bring a training case to the model's frame with the very preprocessing prediction uses.

:func:`medseg.transforms.build_preprocessing` (orientation, spacing with ``ResampleToSpacingd``, the card's
intensity scheme) is built once from the card and applied to the image and, by nearest neighbour, its
label map, so training, validation and prediction see identical inputs.
"""
from __future__ import annotations

import torch

from medseg.core.card import ModelCard
from medseg.io import read_image


def load_case(case: dict, card: ModelCard) -> dict:
    """Read one image/label pair and return ``{"image": float32 (C,*S), "label": int64 (1,*S), "case": name}``
    in the model's frame (reoriented and resampled as for prediction, labels by nearest neighbour)."""
    from medseg.transforms import build_preprocessing

    image = read_image(case["image"], allow_multichannel=True)
    label = read_image(case["label"])
    spatial = image.ndim - 1
    data = build_preprocessing(card, spatial_dims=spatial, label_key="label")({"image": image, "label": label})
    image_t = torch.as_tensor(data["image"].as_tensor() if hasattr(data["image"], "as_tensor") else data["image"])
    label_t = torch.as_tensor(data["label"].as_tensor() if hasattr(data["label"], "as_tensor") else data["label"])
    return {"image": image_t.float().contiguous(), "label": label_t.round().to(torch.int64).contiguous(),
            "case": case["case"]}
