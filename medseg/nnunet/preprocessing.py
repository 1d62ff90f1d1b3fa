"""nnU-Net v2's preprocessing of one case: read, transpose, crop to non-zero, normalise, resample.

Order and arithmetic follow nnU-Net's ``DefaultPreprocessor.run_case``: images are read as SimpleITK gives
them (array axes z, y, x of the file's own voxel grid, no reorientation; spacing reversed to match),
stacked as float32 channels, transposed with ``transpose_forward``, cropped to the bounding box of the
filled non-zero mask of all channels, normalised per channel (before resampling) and resampled to the
configuration's spacing (2D configurations keep the slice spacing). A cascade stage also takes the previous
stage's labels: transposed and cropped with the image (``-1`` outside the non-zero mask), resampled with the
seg rule and appended as one float32 channel per foreground label (nnU-Net's ``convert_labelmap_to_one_hot``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_fill_holes

from medseg.core.errors import MedsegError
from medseg.nnunet.resampling import new_shape, resample, resample_seg

SUPPORTED_READERS = ("SimpleITKIO",)
SUPPORTED_RESAMPLING = ("resample_data_or_seg_to_shape", "resample_data_or_seg_to_spacing")


@dataclass
class Case:
    """A case read the nnU-Net way, with what export needs to undo every step."""

    data: np.ndarray                 # (C, *spatial) float32 after preprocessing
    spacing: list[float]             # file spacing in array axis order (z, y, x)
    sitk_spacing: tuple              # what is written back into the output header
    origin: tuple
    direction: tuple
    shape_before_cropping: tuple
    bbox: list[list[int]]
    shape_after_cropping: tuple


def read_images(files: Sequence[Path]) -> tuple[np.ndarray, dict]:
    """SimpleITKIO semantics: ``(C, z, y, x)`` float32 and the geometry (all channels must agree)."""
    import SimpleITK as sitk

    arrays, geo = [], []
    for f in files:
        try:
            image = sitk.ReadImage(str(f))
        except RuntimeError as exc:
            raise MedsegError(f"cannot read image ({str(exc).strip().splitlines()[-1][:160]})", path=f) from exc
        arr = sitk.GetArrayFromImage(image)
        spacing = image.GetSpacing()
        if arr.ndim == 2:
            arr, nn_spacing = arr[None, None], [max(spacing) * 999, *list(spacing)[::-1]]
        elif arr.ndim == 3:
            arr, nn_spacing = arr[None], list(spacing)[::-1]
        else:
            raise MedsegError(f"expected a 2D or 3D single-channel image, got {arr.ndim} dimensions", path=f,
                              hint="pass each channel as its own file (CASE_0000, CASE_0001, ...)")
        arrays.append(arr)
        geo.append((spacing, image.GetOrigin(), image.GetDirection(), [abs(s) for s in nn_spacing]))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise MedsegError(f"the channel files differ in shape ({', '.join(str(s[1:]) for s in shapes)})",
                          path=files[0], hint="every channel of a case must be on the same voxel grid")
    if len({g[0] for g in geo}) > 1:
        raise MedsegError("the channel files differ in spacing", path=files[0],
                          hint="every channel of a case must be on the same voxel grid")
    props = {"sitk_spacing": geo[0][0], "origin": geo[0][1], "direction": geo[0][2], "spacing": geo[0][3]}
    return np.vstack(arrays, dtype=np.float32, casting="unsafe"), props


def nonzero_bbox(data: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Half-open bounding box of the filled non-zero mask over all channels, and that mask."""
    mask = data[0] != 0
    for c in range(1, data.shape[0]):
        mask |= data[c] != 0
    mask = binary_fill_holes(mask)
    bbox = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(np.any(mask, axis=other))
        bbox.append([int(hit[0]), int(hit[-1]) + 1] if hit.size else [0, mask.shape[axis]])
    return bbox, mask


def normalise(channel: np.ndarray, scheme: str, use_mask: bool, mask: np.ndarray, props: dict | None) -> np.ndarray:
    """One channel normalised in place with nnU-Net's scheme (float32 arithmetic, same order of operations)."""
    eps = 1e-8
    image = channel.astype(np.float32, copy=False)
    if scheme == "ZScoreNormalization":
        if use_mask:
            mean, std = image[mask].mean(), image[mask].std()
            image[mask] = (image[mask] - mean) / max(std, eps)
        else:
            mean, std = image.mean(), image.std()
            image -= mean
            image /= max(std, eps)
    elif scheme == "CTNormalization":
        if not props:
            raise MedsegError("CTNormalization needs the foreground intensity properties of plans.json")
        np.clip(image, props["percentile_00_5"], props["percentile_99_5"], out=image)
        image -= props["mean"]
        image /= max(props["std"], eps)
    elif scheme == "NoNormalization":
        pass
    elif scheme == "RescaleTo01Normalization":
        image -= image.min()
        image /= np.clip(image.max(), a_min=eps, a_max=None)
    elif scheme == "RGBTo01Normalization":
        if image.min() < 0 or image.max() > 255:
            raise MedsegError("RGBTo01Normalization expects values in 0..255 (an 8-bit RGB image)")
        image /= 255.0
    else:
        raise MedsegError(f"unsupported normalization scheme {scheme!r} in plans.json",
                          hint="supported: ZScore, CT, NoNormalization, RescaleTo01, RGBTo01")
    return image


def check_plans(plans: dict, config: dict) -> None:
    """Refuse plans whose reader or resampling medseg does not reproduce."""
    reader = plans.get("image_reader_writer", "SimpleITKIO")
    if reader not in SUPPORTED_READERS:
        raise MedsegError(f"image reader {reader!r} of plans.json is not supported",
                          hint=f"medseg reproduces {', '.join(SUPPORTED_READERS)}")
    for key in ("resampling_fn_data", "resampling_fn_probabilities"):
        if config.get(key, SUPPORTED_RESAMPLING[0]) not in SUPPORTED_RESAMPLING:
            raise MedsegError(f"{key} {config.get(key)!r} of plans.json is not supported",
                              hint=f"medseg reproduces {SUPPORTED_RESAMPLING[0]}")


def target_spacing(config: dict, spacing: Sequence[float]) -> list[float]:
    """The configuration's spacing in transposed axes; 2D configurations keep the slice spacing."""
    target = [float(s) for s in config["spacing"]]
    return [float(spacing[0]), *target] if len(target) < len(spacing) else target


def one_hot(seg: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """``(len(labels), *seg.shape)`` float32: 1 where ``seg`` holds each label (nnU-Net's one-hot, no background)."""
    out = np.zeros((len(labels), *seg.shape), dtype=np.float32)
    for i, label in enumerate(labels):
        out[i] = seg == label
    return out


def preprocess(files: Sequence[Path], plans: dict, config: dict, previous: np.ndarray | None = None,
               foreground: Sequence[int] = ()) -> Case:
    """Preprocess one case the way nnU-Net does before its sliding window; ``previous``: a cascade's input, the
    previous stage's labels on the file's grid (SimpleITK array order), one-hot over ``foreground``."""
    check_plans(plans, config)
    data, props = read_images(files)
    forward = list(plans.get("transpose_forward", [0, 1, 2]))
    data = data.transpose([0, *[i + 1 for i in forward]])
    spacing = [props["spacing"][i] for i in forward]
    shape_before = tuple(data.shape[1:])
    bbox, mask = nonzero_bbox(data)
    crop = tuple(slice(a, b) for a, b in bbox)
    data = np.ascontiguousarray(data[(slice(None), *crop)])
    mask = mask[crop]
    seg = None
    if previous is not None:
        if tuple(previous.shape) != tuple(shape_before[i] for i in np.argsort(forward)):
            raise MedsegError(f"the previous stage's labels {previous.shape} do not fit the image", path=files[0])
        seg = np.asarray(previous, dtype=np.float32).transpose(forward)[crop].copy()
        seg[(seg == 0) & ~mask] = -1
    shape_after = tuple(data.shape[1:])
    target = target_spacing(config, spacing)
    shape = new_shape(shape_after, spacing, target)
    schemes = config["normalization_schemes"]
    masks = config.get("use_mask_for_norm", [False] * len(schemes))
    intensity = plans.get("foreground_intensity_properties_per_channel", {})
    if len(schemes) != data.shape[0]:
        raise MedsegError(f"the model expects {len(schemes)} channels, got {data.shape[0]}", path=files[0])
    for c in range(data.shape[0]):
        data[c] = normalise(data[c], schemes[c], bool(masks[c]), mask, intensity.get(str(c)))
    kwargs = dict(config.get("resampling_fn_data_kwargs", {"order": 3, "order_z": 0, "force_separate_z": None}))
    kwargs.pop("is_seg", None)
    data = resample(data, shape, spacing, target, **kwargs)
    if seg is not None:
        kwargs = dict(config.get("resampling_fn_seg_kwargs", {"order": 1, "order_z": 0, "force_separate_z": None}))
        kwargs.pop("is_seg", None)
        seg = resample_seg(seg[None], shape, spacing, target, **kwargs)[0].astype(np.int8 if seg.max() <= 127
                                                                                    else np.int16)
        data = np.vstack((data, one_hot(seg, foreground)))
    return Case(np.ascontiguousarray(data), spacing, props["sitk_spacing"], props["origin"], props["direction"],
                shape_before, bbox, shape_after)
