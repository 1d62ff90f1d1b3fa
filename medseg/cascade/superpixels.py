"""DeepOrgan's regional stage: SLIC superpixels in the ROI, each classified from multi-scale ("zoom-out")
boxes around it by a small ConvNet, superpixel probabilities projected back to voxels.

Optional alternative / complement to the dense stage 2 (``CascadePipeline(regional=RegionalStage(...))``):
superpixels follow intensity edges, so the voxel map inherits organ boundaries from the image.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.segmentation import slic
from torch import nn


def superpixels(image: np.ndarray, n_segments: int = 200, compactness: float = 0.1) -> np.ndarray:
    """3D SLIC superpixels (labels from 1) of a single-channel volume, intensities rescaled to [0, 1]."""
    x = np.asarray(image, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / max(hi - lo, 1e-8)
    return slic(x, n_segments=n_segments, compactness=compactness, channel_axis=None, start_label=1,
                enforce_connectivity=True)


def zoom_out_boxes(volume: torch.Tensor, labels: np.ndarray, scales: Sequence[float] = (1.0, 2.0, 3.0),
                   patch: int = 16) -> tuple[torch.Tensor, np.ndarray]:
    """For each superpixel, boxes around its bounding box grown by each scale, resized to ``patch``^3 and
    stacked as channels: returns ``(N, C * len(scales), p, p, p)`` and the superpixel ids (N,)."""
    shape = np.asarray(labels.shape)
    ids, boxes = [], []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        lo = np.array([s.start for s in sl], float)
        hi = np.array([s.stop for s in sl], float)
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 2.0)
        views = []
        for s in scales:
            a = np.floor(centre - s * half).astype(int)
            b = np.ceil(centre + s * half).astype(int)
            ca, cb = np.clip(a, 0, shape), np.clip(b, 0, shape)
            crop = volume[(slice(None), *(slice(x, y) for x, y in zip(ca, cb)))]
            pad = [p for d in reversed(range(3)) for p in (int(ca[d] - a[d]), int(b[d] - cb[d]))]
            crop = F.pad(crop[None], pad, mode="replicate") if any(pad) else crop[None]
            views.append(F.interpolate(crop.float(), size=(patch,) * 3, mode="trilinear", align_corners=False)[0])
        ids.append(i)
        boxes.append(torch.cat(views, 0))
    if not boxes:
        return torch.zeros((0, volume.shape[0] * len(scales), patch, patch, patch)), np.zeros(0, int)
    return torch.stack(boxes), np.asarray(ids)


class ZoomOutNet(nn.Module):
    """Small 3D ConvNet: multi-scale boxes (channels) -> 2 logits (background, organ)."""

    def __init__(self, in_channels: int = 2, n_scales: int = 3, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(in_channels * n_scales, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool3d(2),
            nn.Conv3d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool3d(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(2 * width, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class RegionalStage:
    """Callable for ``CascadePipeline(regional=...)``: ``(C, *roi)`` input -> organ probability per voxel."""

    def __init__(self, net: nn.Module, *, n_segments: int = 200, compactness: float = 0.1,
                 scales: Sequence[float] = (1.0, 2.0, 3.0), patch: int = 16, batch_size: int = 64) -> None:
        self.net, self.n_segments, self.compactness = net.eval(), n_segments, compactness
        self.scales, self.patch, self.batch_size = tuple(scales), patch, batch_size
        self.last_superpixels: np.ndarray | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        labels = superpixels(x[0].numpy(), self.n_segments, self.compactness)
        self.last_superpixels = labels
        boxes, ids = zoom_out_boxes(x, labels, self.scales, self.patch)
        probs = np.zeros(int(labels.max()) + 1, np.float32)
        with torch.inference_mode():
            for i in range(0, len(ids), self.batch_size):
                p = torch.softmax(self.net(boxes[i:i + self.batch_size]).float(), 1)[:, 1]
                probs[ids[i:i + self.batch_size]] = p.numpy()
        return torch.from_numpy(probs[labels])
