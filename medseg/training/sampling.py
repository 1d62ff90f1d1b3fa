"""Patch sampling with foreground oversampling and MONAI augmentation, for the training loop."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset


def build_augmentation(roi_size: Sequence[int], *, spatial_dims: int = 3, mirror_axes: Sequence[int] = (0, 1, 2),
                       strength: str = "default", float_keys: Sequence[str] = ()):
    """nnU-Net-like augmentation as MONAI dict transforms: rotation/scaling, noise, blur, brightness,
    contrast, gamma and mirroring. ``strength="none"`` disables everything (for tests). ``float_keys``:
    extra maps (soft labels) moved with the label, interpolated bilinearly, zero fill."""
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandFlipd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
    )

    if strength == "none":
        return Compose([])
    rotate = (np.pi / 6,) * (3 if spatial_dims == 3 else 1)
    geometric = ("image", "label", *float_keys)
    transforms = [
        RandAffined(keys=geometric, prob=0.3, rotate_range=rotate, scale_range=(0.3,) * spatial_dims,
                    mode=("bilinear", "nearest", *["bilinear"] * len(float_keys)), padding_mode="zeros",
                    spatial_size=tuple(roi_size)),
        RandGaussianNoised(keys="image", prob=0.15, std=0.1),
        RandGaussianSmoothd(keys="image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        RandScaleIntensityd(keys="image", prob=0.15, factors=0.25),
        RandAdjustContrastd(keys="image", prob=0.15, gamma=(0.7, 1.5)),
    ]
    transforms += [RandFlipd(keys=geometric, prob=0.5, spatial_axis=a) for a in mirror_axes]
    return Compose(transforms)


class PatchDataset(TorchDataset):
    """Random patches from in-memory cases; ``foreground_fraction`` of them centred on a foreground voxel.

    An epoch is ``samples_per_epoch`` patches; case choice and crop use the worker's seeded RNG, so a run
    is reproducible for a fixed seed and number of workers. ``extra_keys``: further per-case maps (soft
    labels) cropped with the same window and returned as float.
    """

    def __init__(self, cases: list[dict], roi_size: Sequence[int], samples_per_epoch: int,
                 foreground_fraction: float = 0.33, augment=None, seed: int = 0,
                 extra_keys: Sequence[str] = ()) -> None:
        self.cases = cases
        self.roi = tuple(int(r) for r in roi_size)
        self.samples_per_epoch = samples_per_epoch
        self.foreground_fraction = foreground_fraction
        self.augment = augment
        self.seed = seed
        self.extra_keys = tuple(extra_keys)
        self.epoch = 0
        self._fg = [torch.nonzero(c["label"][0] > 0) for c in cases]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        k = int(rng.integers(len(self.cases)))
        case = self.cases[k]
        image, label = _pad_to(case["image"], self.roi), _pad_to(case["label"], self.roi)
        shape = image.shape[1:]
        fg = self._fg[k]
        if len(fg) and rng.random() < self.foreground_fraction:
            centre = fg[int(rng.integers(len(fg)))].tolist()
            offset = [c + (shape[d] - case["image"].shape[d + 1]) // 2 for d, c in enumerate(centre)]
            start = [int(np.clip(o - r // 2, 0, s - r)) for o, r, s in zip(offset, self.roi, shape)]
        else:
            start = [int(rng.integers(0, s - r + 1)) for s, r in zip(shape, self.roi)]
        window = tuple(slice(a, a + r) for a, r in zip(start, self.roi))
        sample = {"image": image[(slice(None), *window)], "label": label[(slice(None), *window)]}
        for key in self.extra_keys:
            sample[key] = _pad_to(case[key], self.roi)[(slice(None), *window)]
        if self.augment is not None:
            self.augment.set_random_state(seed=int(rng.integers(2**31)))
            sample = self.augment(sample)
            sample = {"image": _plain(sample["image"]).float(), "label": _plain(sample["label"]).round().long(),
                      **{key: _plain(sample[key]).float() for key in self.extra_keys}}
        return sample


def _pad_to(tensor: torch.Tensor, roi: Sequence[int]) -> torch.Tensor:
    """Zero-pad (centred) so every spatial axis is at least the ROI size."""
    pads = []
    for size, r in zip(reversed(tensor.shape[1:]), reversed(roi)):
        extra = max(r - size, 0)
        pads += [extra // 2, extra - extra // 2]
    return torch.nn.functional.pad(tensor, pads) if any(pads) else tensor


def _plain(x) -> torch.Tensor:
    """A plain tensor (MONAI transforms return MetaTensors, which collate slowly)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
