"""Masks <-> landmark contours for graph models (HybridGNet): tracing, resampling, rasterising, letterboxing.

Conventions used everywhere in medseg's graph code:

- Images are 2D arrays indexed ``[row, col]``; a point is ``(x, y) = (col, row)`` in pixels, pixel centres
  on integers (scikit-image's convention), so a point and the pixel it lies on agree.
- Each organ's contour starts at its topmost point (the middle of a flat top) and runs clockwise as seen
  on screen (y pointing down), at equal arc length along the traced outline.
- Lungs are told apart by position: the component whose centre lies on the image's left is the patient's
  right lung (radiological display).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medseg.core.errors import MedsegError
from medseg.core.log import get_logger

logger = get_logger(__name__)

LUNGS = ("right_lung", "left_lung")


class LandmarkError(MedsegError):
    """A mask that cannot give a reliable landmark contour (split organ, organ cut by the border...)."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """A float32 (H, W) grey image from (H, W), (H, W, 1|3|4) or (1|3|4, H, W); colour uses Rec. 601 luma."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3, 4):
        a = np.moveaxis(a, -1, 0)
    elif a.ndim == 3 and a.shape[0] not in (1, 3, 4):
        raise MedsegError(f"a 2D image was expected, got an array of shape {a.shape}",
                          hint="give one (H, W) slice or an RGB image")
    if a.ndim == 3:
        if a.shape[0] >= 3:
            logger.info("converting a %d-channel colour image to grey", a.shape[0])
            a = 0.299 * a[0].astype(np.float32) + 0.587 * a[1] + 0.114 * a[2]
        else:
            a = a[0]
    if a.ndim != 2:
        raise MedsegError(f"a 2D image was expected, got an array of shape {a.shape}")
    return a.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------- contours
def signed_area(points: np.ndarray) -> float:
    """Shoelace area of a closed polygon in (x, y) pixels; positive = clockwise on screen (y down)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def trace_outer_contour(mask: np.ndarray) -> np.ndarray:
    """The outer outline of a binary region as a closed (M, 2) polygon of (x, y) points, clockwise.

    Marching squares at level 0.5 on the mask padded by one pixel, so the outline runs half-way between
    inside and outside pixel centres and is always closed; the longest contour is the outer one. A light
    circular smoothing (sigma one vertex) removes the staircase, which would otherwise lengthen the outline
    and shift points placed at equal arc length.
    """
    from scipy.ndimage import gaussian_filter1d
    from skimage.measure import find_contours

    mask = np.asarray(mask) > 0
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if len(rows) == 0:
        raise LandmarkError("the mask is empty, there is no contour to trace")
    crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    contours = find_contours(np.pad(crop.astype(np.float32), 1), 0.5)
    rc = max(contours, key=len)[:-1] - 1.0 + np.array([rows[0], cols[0]])  # drop the repeated end, undo crop
    points = rc[:, ::-1].astype(np.float64)         # (row, col) -> (x, y)
    if len(points) >= 8:
        points = gaussian_filter1d(points, 1.0, axis=0, mode="wrap")
    return points if signed_area(points) > 0 else points[::-1].copy()


def _anchor(points: np.ndarray, cum: np.ndarray, total: float) -> float:
    """Arc-length position of the topmost point: the middle of the run of vertices around the top that lie
    within 2% of the height (at least half a pixel) below it, so a flat top gives a stable anchor."""
    y = points[:, 1]
    top = int(np.argmin(y))
    near = y <= y[top] + max(0.5, 0.02 * float(np.ptp(y)))
    n = len(points)
    lo = hi = top
    while near[(lo - 1) % n] and (lo - 1) % n != top:
        lo -= 1
    while near[(hi + 1) % n] and (hi + 1) % n != top and hi - lo < n - 1:
        hi += 1
    start = cum[lo % n] - (total if lo < 0 else 0.0)
    end = cum[hi % n] + (total if hi >= n else 0.0)
    return float(((start + end) / 2) % total)


def resample_contour(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points at equal arc length along a closed polygon, from its topmost point, clockwise."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        raise LandmarkError(f"a contour needs at least 3 points, got {len(pts)}")
    if signed_area(pts) < 0:
        pts = pts[::-1]
    closed = np.vstack([pts, pts[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(cum[-1])
    if total <= 0:
        raise LandmarkError("the contour has zero length")
    start = _anchor(pts, cum, total)
    targets = (start + total * np.arange(n) / n) % total
    x = np.interp(targets, cum, closed[:, 0])
    y = np.interp(targets, cum, closed[:, 1])
    return np.stack([x, y], axis=1)


# ---------------------------------------------------------------------------------------------- masks
def _components(mask: np.ndarray, min_fraction: float) -> list[np.ndarray]:
    """Connected components (8-connected) with holes filled, dropping specks below ``min_fraction``."""
    from scipy import ndimage as ndi

    labels, count = ndi.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    sizes = ndi.sum(mask, labels, range(1, count + 1))
    keep = [k + 1 for k, s in enumerate(sizes) if s >= min_fraction * sizes.sum()]
    if len(keep) < count:
        logger.info("ignoring %d speck(s) below %.1f%% of the foreground", count - len(keep), 100 * min_fraction)
    boxes = ndi.find_objects(labels)
    parts = []
    for k in keep:  # fill holes inside the bounding box only (full-size images are large)
        part = np.zeros(mask.shape, bool)
        part[boxes[k - 1]] = ndi.binary_fill_holes(labels[boxes[k - 1]] == k)
        parts.append(part)
    return parts


def _check_border(region: np.ndarray, name: str, border_tolerance: float) -> None:
    """Raise when more than ``border_tolerance`` of the region's outline lies on the image border."""
    edge = np.concatenate([region[0], region[-1], region[1:-1, 0], region[1:-1, -1]])
    touching = int(edge.sum())
    if touching == 0:
        return
    from scipy import ndimage as ndi

    outline = int((region & ~ndi.binary_erosion(region, border_value=1)).sum()) + touching
    if touching > border_tolerance * outline:
        raise LandmarkError(f"the {name.replace('_', ' ')} touches the image border along {touching} pixels "
                            f"({100 * touching / outline:.0f}% of its outline), so its contour is cut",
                            hint=f"allowed: {100 * border_tolerance:.0f}%")


def split_lungs(mask: np.ndarray, *, min_fraction: float = 0.01, border_tolerance: float = 0.02) -> dict:
    """``{"right_lung": bool mask, "left_lung": bool mask}`` from a binary lung mask.

    Raises :class:`LandmarkError` unless there are exactly two parts (after dropping specks smaller than
    ``min_fraction`` of the foreground) or when a lung's outline runs along the image border for more
    than ``border_tolerance`` of its length.
    """
    parts = _components(np.asarray(mask) > 0, min_fraction)
    if len(parts) != 2:
        raise LandmarkError(f"expected 2 lungs, found {len(parts)} separate part(s)",
                            hint="a lung split into several parts or lungs joined together give no single contour")
    centres = [np.nonzero(p)[1].mean() for p in parts]
    right, left = (parts[0], parts[1]) if centres[0] < centres[1] else (parts[1], parts[0])
    out = {"right_lung": right, "left_lung": left}
    for name, region in out.items():
        _check_border(region, name, border_tolerance)
    return out


def mask_to_landmarks(mask: np.ndarray, organs: Sequence[tuple[str, int]], *,
                      labels: Mapping[str, int] | None = None, min_fraction: float = 0.01,
                      border_tolerance: float = 0.02) -> dict[str, np.ndarray]:
    """Landmarks ``{organ: (n, 2) (x, y)}`` for each ``(organ, n)`` of a template, from a mask.

    Without ``labels`` the mask is a binary lung mask (any non-zero value, an "ignore" value included,
    is lung) split into ``right_lung``/``left_lung`` by :func:`split_lungs`; with ``labels`` each organ is
    ``mask == labels[organ]`` and must be one part.
    """
    mask = np.asarray(mask)
    if labels is None:
        unknown = [name for name, _ in organs if name not in LUNGS]
        if unknown:
            raise MedsegError(f"organs {unknown} need a label map", hint="pass labels={organ: value}")
        regions = split_lungs(mask, min_fraction=min_fraction, border_tolerance=border_tolerance)
    else:
        regions = {}
        for name, _ in organs:
            parts = _components(mask == labels[name], min_fraction)
            if len(parts) != 1:
                raise LandmarkError(f"{name}: expected one part, found {len(parts)}")
            _check_border(parts[0], name, border_tolerance)
            regions[name] = parts[0]
    return {name: resample_contour(trace_outer_contour(regions[name]), int(n)) for name, n in organs}


def landmarks_to_mask(landmarks: Mapping[str, np.ndarray], shape: Sequence[int],
                      order: Sequence[str] | None = None) -> np.ndarray:
    """Rasterise closed contours into a uint8 label map: organ ``k`` of ``order`` gets value ``k + 1``.

    Pixels whose centre lies inside a polygon are filled (scikit-image ``polygon``); later organs are
    drawn over earlier ones where they overlap.
    """
    from skimage.draw import polygon

    out = np.zeros(tuple(int(s) for s in shape[:2]), np.uint8)
    for k, name in enumerate(order or list(landmarks)):
        pts = np.asarray(landmarks[name], dtype=np.float64)
        rr, cc = polygon(pts[:, 1], pts[:, 0], shape=out.shape)
        out[rr, cc] = k + 1
    return out


# ---------------------------------------------------------------------------------------------- letterbox
@dataclass(frozen=True)
class Letterbox:
    """Fit an (H, W) image into a ``size`` x ``size`` square: uniform scale, then centred zero padding.

    Keeps the aspect ratio (a squashed chest changes the shape a graph model has learned) and maps points
    both ways exactly.
    """

    height: int
    width: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.height, self.width)

    @property
    def resized(self) -> tuple[int, int]:
        return (max(1, round(self.height * self.scale)), max(1, round(self.width * self.scale)))

    @property
    def offset(self) -> tuple[int, int]:
        """(top, left) padding."""
        h, w = self.resized
        return ((self.size - h) // 2, (self.size - w) // 2)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Resize (bilinear, antialiased) and pad a 2D float image to ``size`` x ``size``."""
        h, w = self.resized
        t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0, 0]
        top, left = self.offset
        out = torch.zeros(self.size, self.size)
        out[top:top + h, left:left + w] = t
        return out.numpy()

    def _axis_scales(self) -> np.ndarray:
        h, w = self.resized
        return np.array([w / self.width, h / self.height])

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """(x, y) pixels of the original image -> pixels of the letterboxed input."""
        top, left = self.offset
        return (np.asarray(points, np.float64) + 0.5) * self._axis_scales() - 0.5 + np.array([left, top])

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """(x, y) pixels of the letterboxed input -> pixels of the original image."""
        top, left = self.offset
        return (np.asarray(points, np.float64) - np.array([left, top]) + 0.5) / self._axis_scales() - 0.5
