"""Is this scan something this model can segment? Clear errors for impossible pairs, warnings for odd ones."""
from __future__ import annotations

import torch

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)

_MR = {"MR", "MRI", "T1", "T2", "FLAIR"}
_SAMPLE = 1 << 20


def check_dimensions(image: torch.Tensor, card: ModelCard, path: str | None = None) -> None:
    """A 2D image cannot go through a 3D model; inputs must have 2 or 3 spatial axes."""
    spatial = image.ndim - 1
    if spatial not in (2, 3):
        raise MedsegError(f"expected a channel-first 2D or 3D image, got shape {tuple(image.shape)}", path=path)
    if spatial == 2 and card.spatial_dims == 3:
        raise MedsegError(
            f"is a 2D image but {card.name} is a 3D model",
            path=path,
            hint="use a 2D model (see `medseg models list`), or give a 3D volume",
        )


def match_channels(image: torch.Tensor, card: ModelCard, path: str | None = None) -> tuple[torch.Tensor, list[str]]:
    """Return the image with the model's channel count; RGB(A) becomes grey for 1-channel models."""
    warnings: list[str] = []
    have, want = int(image.shape[0]), card.in_channels
    if have == want:
        return image, warnings
    if want == 1 and have in (3, 4):
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(3, *([1] * (image.ndim - 1)))
        grey = (image[:3].float() * weights).sum(0, keepdim=True)
        warnings.append(f"converted a {have}-channel colour image to greyscale for {card.name}")
        return grey, warnings
    raise MedsegError(
        f"has {have} channel(s) but {card.name} expects {want} ({', '.join(card.channel_names)})",
        path=path,
        hint="pick one frame of a 4D file with --frame N, or give a file with the model's channels",
    )


def looks_like_ct(image: torch.Tensor) -> bool:
    """CT in Hounsfield units has air near -1000: many voxels below -500 and a minimum below -900."""
    flat = image[0].reshape(-1)
    if flat.numel() > _SAMPLE:
        flat = flat[:: flat.numel() // _SAMPLE + 1]
    flat = flat.float()
    return bool(flat.min() < -900 and (flat < -500).float().mean() > 0.02)


def check_modality(image: torch.Tensor, card: ModelCard, path: str | None = None) -> list[str]:
    """Warnings when the intensities do not look like the card's modality (CT vs MR)."""
    modality = (card.modality or "any").upper()
    if modality in ("ANY", "") or image.ndim - 1 == 2:
        return []
    ct = looks_like_ct(image)
    name = f"{path}: " if path else ""
    if modality == "CT" and not ct:
        return [f"{name}does not look like CT in Hounsfield units (no air near -1000), but {card.name} "
                f"was trained on CT; results may be poor"]
    if modality in _MR and ct:
        return [f"{name}looks like CT (air near -1000 HU), but {card.name} was trained on {card.modality}; "
                f"results may be poor"]
    return []
