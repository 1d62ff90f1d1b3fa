"""SAUNA soft labels (Dang, Nguyen, Tiulpin, WACV 2025): a hard mask becomes a signed map in [-1, 1].

The label says how sure an annotation is: +1 on the centreline of a structure, smaller towards its
boundary (more so for thick structures than thin ones), just below 0 right outside, and -1 far away.
A model trained on it has a tanh output; ``soft_to_mask`` turns that output back into a mask.

Formula (the official generator's "h" variant; ``shared/docs/models.md`` section 5.1), for one
binary mask M with foreground F:

* ``d_in(p)``  = Euclidean distance from a foreground pixel to the nearest background pixel (0 outside F);
* ``d_out(p)`` = distance from a background pixel to the nearest foreground pixel (0 inside F);
* ``T = max d_in`` (the half-width of the thickest structure); ``d~_out = min(d_out, T)``;
* ``k = ceil(T)``, bumped to the next odd number: the window of a max filter with -inf padding;
* ``tau   = maxfilter_k(d_in)``   (local half-width), ``omega = maxfilter_k(d~_out)``;
* ``y = 1 - (tau - d_in) / T``          on F,
  ``y = -1 + (omega - d~_out) / T``     off F,   then clipped to [-1, 1].

So ``sign(y)`` is the hard label, ``y = 1`` on local maxima of ``d_in`` (centrelines), and ``|y| >= 1/T``
everywhere, never 0. Within half a window of a centreline ``y = d_in / T``; a structure as thick as T
then reaches a plateau near ``1 - (k // 2) / T`` (about 0.5) out to its boundary, so the boundary of a
thick structure is less certain than that of a thin one, whose whole profile fits in one window.
Outside, ``y`` falls monotonically with the distance, to -1 beyond T. An empty mask gives -1 everywhere, a full mask +1 everywhere. Distances are exact
Euclidean distance transforms (the official code uses OpenCV's 5x5-mask approximation); with ``spacing``
they are in physical units and the window is ``ceil(T / spacing_i)`` voxels per axis (odd), which for
isotropic spacing gives exactly the pixel formula, since ``y`` is scale-invariant.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from medseg.core.errors import MedsegError

__all__ = ["SaunaSoftLabel", "SaunaSoftLabeld", "sauna_activation", "sauna_map", "sauna_soft_label",
           "soft_to_mask", "soft_to_probability"]


def _window(half_width: float, spacing: Sequence[float]) -> tuple[int, ...]:
    """Per-axis window: ceil(T / spacing_i), bumped to the next odd number."""
    sizes = []
    for s in spacing:
        k = max(math.ceil(half_width / s - 1e-9), 1)
        sizes.append(k + 1 if k % 2 == 0 else k)
    return tuple(sizes)


def sauna_map(mask: np.ndarray, spacing: Sequence[float] | None = None, *, crop: bool = True) -> np.ndarray:
    """The SAUNA signed soft label of one binary mask (any number of spatial dims, no channel axis).

    Args:
        mask: array, foreground where ``> 0``.
        spacing: voxel size per axis for physical distances; None: pixel units (the official setting).
        crop: compute inside the foreground's bounding box plus the margin where ``y > -1`` can occur
            (exact, and much faster for small structures in large volumes).

    Returns:
        float32 array of ``mask.shape`` in [-1, 1] (formula in the module docstring).
    """
    fg = np.asarray(mask) > 0
    if spacing is None:
        spacing = (1.0,) * fg.ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != fg.ndim or min(spacing) <= 0:
        raise MedsegError(f"spacing {spacing} does not fit a {fg.ndim}D mask",
                          hint="give one positive voxel size per spatial axis")
    if not fg.any():
        return np.full(fg.shape, -1.0, np.float32)
    if fg.all():
        return np.full(fg.shape, 1.0, np.float32)
    if not crop:
        return _sauna_map(fg, spacing)
    from scipy.ndimage import distance_transform_edt

    # d_in is exact in the bounding box padded by one background voxel, which gives T; beyond T plus half a
    # window (plus one voxel) from the foreground, d~_out = omega = T and y = -1 exactly.
    box = [np.flatnonzero(fg.any(axis=tuple(a for a in range(fg.ndim) if a != d))) for d in range(fg.ndim)]
    inner = tuple(slice(max(b[0] - 1, 0), b[-1] + 2) for b in box)
    half_width = float(distance_transform_edt(fg[inner], sampling=spacing).max())
    margins = [math.ceil(half_width / s) + k // 2 + 1 for s, k in zip(spacing, _window(half_width, spacing))]
    outer = tuple(slice(max(b[0] - m, 0), b[-1] + 1 + m) for b, m in zip(box, margins))
    out = np.full(fg.shape, -1.0, np.float32)
    out[outer] = _sauna_map(fg[outer], spacing)
    return out


def _sauna_map(fg: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """The formula on a boolean array with both foreground and background."""
    from scipy.ndimage import distance_transform_edt, maximum_filter

    d_in = distance_transform_edt(fg, sampling=spacing)
    d_out = distance_transform_edt(~fg, sampling=spacing)
    half_width = float(d_in.max())
    d_out = np.minimum(d_out, half_width)
    size = _window(half_width, spacing)
    tau = maximum_filter(d_in, size=size, mode="constant", cval=-np.inf)
    omega = maximum_filter(d_out, size=size, mode="constant", cval=-np.inf)
    y = np.where(fg, 1.0 - (tau - d_in) / half_width, -1.0 + (omega - d_out) / half_width)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def sauna_soft_label(label, classes: Sequence[int] | None = None,
                     spacing: Sequence[float] | None = None) -> np.ndarray:
    """Per-class SAUNA labels of a channel-first label map ``(1, *spatial)`` (2D or 3D).

    Args:
        label: integer label map (numpy or torch), one channel.
        classes: label values, one output channel each (one-vs-rest); None: binary, foreground = ``label > 0``.
        spacing: see :func:`sauna_map`.

    Returns:
        float32 ``(K, *spatial)`` with K = ``len(classes)`` (1 when None).
    """
    array = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if array.ndim < 3 or array.shape[0] != 1:
        raise MedsegError(f"SAUNA needs a channel-first label map (1, H, W[, D]), got shape {array.shape}",
                          hint="add a channel axis, e.g. EnsureChannelFirstd")
    array = array[0]
    if classes is None:
        return sauna_map(array > 0, spacing)[None]
    return np.stack([sauna_map(array == c, spacing) for c in classes])


class SaunaSoftLabel(Transform):
    """Array transform: label map ``(1, *spatial)`` -> SAUNA soft labels ``(K, *spatial)``.

    A MetaTensor input gives a MetaTensor with the same meta data (affine kept). See the module
    docstring for the formula.
    """

    def __init__(self, classes: Sequence[int] | None = None, spacing: Sequence[float] | None = None) -> None:
        self.classes = None if classes is None else tuple(int(c) for c in classes)
        self.spacing = None if spacing is None else tuple(float(s) for s in spacing)

    def __call__(self, label):
        soft = sauna_soft_label(label, self.classes, self.spacing)
        if isinstance(label, torch.Tensor):
            out = torch.as_tensor(soft, device=label.device)
            if isinstance(label, MetaTensor):
                return MetaTensor(out, meta=dict(label.meta))
            return out
        return soft


class SaunaSoftLabeld(MapTransform):
    """Dictionary version of :class:`SaunaSoftLabel`.

    Args:
        keys: label key(s) to convert.
        classes / spacing: see :func:`sauna_soft_label`.
        output_key: write the soft label here and keep the hard label (one key only); None: replace in place.

    Example:
        ``SaunaSoftLabeld("label", output_key="sauna")`` on ``{"label": (1, 256, 256)}`` adds
        ``"sauna"``: ``(1, 256, 256)`` float32 in [-1, 1].
    """

    def __init__(self, keys: KeysCollection, classes: Sequence[int] | None = None,
                 spacing: Sequence[float] | None = None, output_key: str | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if output_key is not None and len(self.keys) != 1:
            raise MedsegError("output_key needs exactly one input key", hint=f"got keys {self.keys}")
        self.output_key = output_key
        self.transform = SaunaSoftLabel(classes, spacing)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key or key] = self.transform(d[key])
        return d


# --------------------------------------------------------------------------------------------- output side

def sauna_activation(logits: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """Network output -> signed soft map in [-1, 1]: ``tanh(z)`` (SAUNA), or ``2*sigmoid(z) - 1`` for a
    model trained with a sigmoid output (the same map, since ``2*sigmoid(z) - 1 = tanh(z / 2)``)."""
    if activation == "tanh":
        return torch.tanh(logits.float())
    if activation == "sigmoid":
        return 2.0 * torch.sigmoid(logits.float()) - 1.0
    raise MedsegError(f"unknown SAUNA output activation {activation!r}", hint="use 'tanh' or 'sigmoid'")


def soft_to_probability(pred):
    """Signed soft map y in [-1, 1] -> foreground probability ``(y + 1) / 2`` in [0, 1] (what to save as
    the soft map, and what calibration is measured on). Works on torch tensors and numpy arrays."""
    if isinstance(pred, torch.Tensor):
        return ((pred.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    return np.clip((np.asarray(pred, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)


def soft_to_mask(pred, threshold: float = 0.5, *, channel_dim: int = 0):
    """Threshold a SAUNA output into a label map; this is what prediction should call.

    Args:
        pred: the signed soft map y in [-1, 1] (apply :func:`sauna_activation` to raw logits first), with
            one channel per foreground class along ``channel_dim``: ``(K, *spatial)`` for one case.
        threshold: on the probability ``(y + 1) / 2``; the default 0.5 is the official rule ``y > 0``.

    Returns:
        label map without the channel axis, uint8 (int64 for K > 254): for K = 1 a 0/1 mask; for K > 1 the
        value ``c + 1`` of the most confident class c where its probability exceeds ``threshold``, else 0.
        Same library (torch or numpy) as ``pred``.

    Example (for the predict engine)::

        soft = sauna_activation(logits[0])                # (K, *spatial), logits from the model
        mask = soft_to_mask(soft, card.postprocess["sauna"]["threshold"])
        prob = soft_to_probability(soft)                  # optional soft map to save
    """
    if not 0.0 < threshold < 1.0:
        raise MedsegError(f"SAUNA threshold must lie strictly between 0 and 1, got {threshold}",
                          hint="0.5 is the default (signed output > 0)")
    is_numpy = not isinstance(pred, torch.Tensor)
    prob = soft_to_probability(torch.as_tensor(np.asarray(pred)) if is_numpy else pred)
    k = prob.shape[channel_dim]
    dtype = torch.uint8 if k <= 254 else torch.int64
    if k == 1:
        mask = (prob.squeeze(channel_dim) > threshold).to(dtype)
    else:
        best, index = prob.max(channel_dim)
        mask = torch.where(best > threshold, index + 1, torch.zeros_like(index)).to(dtype)
    return mask.numpy() if is_numpy else mask
