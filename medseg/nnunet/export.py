"""Logits back to a label map on the input's voxel grid, the way nnU-Net v2 exports a prediction.

``convert_predicted_logits_to_segmentation_with_correct_shape``: the float16 logits are resampled (order 1,
nnU-Net's rule for the coarse axis) to the cropped shape, turned into labels (argmax, or sigmoid > 0.5 per
region painted in ``regions_class_order``), put back into the crop's bounding box and transposed back.
"""
from __future__ import annotations

import numpy as np
import torch

from medseg.nnunet.labels import Labels
from medseg.nnunet.preprocessing import Case
from medseg.nnunet.resampling import resample


def model_spacing(config: dict, case: Case) -> list[float]:
    """The spacing the logits are on (2D configurations: the slice spacing of the case)."""
    spacing = [float(s) for s in config["spacing"]]
    return spacing if len(spacing) == len(case.shape_after_cropping) else [case.spacing[0], *spacing]


def logits_to_cropped_labels(logits: torch.Tensor, case: Case, config: dict, labels: Labels) -> np.ndarray:
    """Labels on the cropped grid from float16 logits on the model grid."""
    kwargs = dict(config.get("resampling_fn_probabilities_kwargs",
                             {"order": 1, "order_z": 0, "force_separate_z": None}))
    kwargs.pop("is_seg", None)
    array = resample(logits.numpy(), case.shape_after_cropping, model_spacing(config, case), case.spacing, **kwargs)
    if labels.has_regions:
        prob = torch.sigmoid(torch.from_numpy(np.asarray(array)).float())
        seg = torch.zeros(prob.shape[1:], dtype=torch.int16)
        for i, value in enumerate(labels.regions_class_order):
            seg[prob[i] > 0.5] = value
        return seg.numpy()
    return np.asarray(array).argmax(0)


def uncrop(cropped: np.ndarray, case: Case, plans: dict, num_foreground: int) -> np.ndarray:
    """Insert the cropped labels into the full grid and undo ``transpose_forward``."""
    full = np.zeros(case.shape_before_cropping, dtype=np.uint8 if num_foreground < 255 else np.uint16)
    full[tuple(slice(a, b) for a, b in case.bbox)] = cropped
    return full.transpose(list(plans.get("transpose_backward", [0, 1, 2])))


def labels_to_sitk(seg: np.ndarray, case: Case):
    """A SimpleITK image of ``seg`` with the input's spacing, origin and direction (2D inputs stay 2D)."""
    import SimpleITK as sitk

    if len(case.sitk_spacing) == 2:
        seg = seg[0]
    image = sitk.GetImageFromArray(seg.astype(np.uint8 if seg.max(initial=0) < 255 else np.uint16, copy=False))
    image.SetSpacing(case.sitk_spacing)
    image.SetOrigin(case.origin)
    image.SetDirection(case.direction)
    return image
