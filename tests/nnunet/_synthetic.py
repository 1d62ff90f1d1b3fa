"""A small nnU-Net v2 result folder built in code (random weights in nnU-Net's checkpoint layout)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from medseg.nnunet.network import build_network

REQ = ["conv_op", "norm_op", "dropout_op", "nonlin"]


def arch(kind: str = "PlainConvUNet", dims: int = 3) -> dict:
    kw = {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": f"torch.nn.modules.conv.Conv{dims}d",
          "kernel_sizes": [[3] * dims] * 3, "strides": [[1] * dims, [2] * dims, [2] * dims],
          "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
          "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
          "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
          "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    kw["n_conv_per_stage" if kind == "PlainConvUNet" else "n_blocks_per_stage"] = [2, 2, 2]
    module = "unet" if kind == "PlainConvUNet" else "residual_unet"
    return {"network_class_name": f"dynamic_network_architectures.architectures.{module}.{kind}",
            "arch_kwargs": kw, "_kw_requires_import": REQ}


def plans(kind: str = "PlainConvUNet", channels: int = 1) -> dict:
    return {
        "dataset_name": "Dataset999_Synthetic", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "foreground_intensity_properties_per_channel": {str(c): {"mean": 0.0, "std": 1.0, "percentile_00_5": -3.0,
                                                                "percentile_99_5": 3.0} for c in range(channels)},
        "configurations": {"3d_fullres": {
            "data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": [16, 16, 16], "spacing": [1.0, 1.0, 1.0],
            "normalization_schemes": ["ZScoreNormalization"] * channels, "use_mask_for_norm": [False] * channels,
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": arch(kind)}},
    }


def _labels(heads: int) -> dict:
    names = ["a", "b"] if heads == 3 else [f"c{i}" for i in range(1, heads)]
    return {"background": 0, **{n: i for i, n in enumerate(names, start=1)}}


def make_folder(root: Path, *, kind: str = "PlainConvUNet", channels: int = 1, folds=("0",),
                trainer: str = "nnUNetTrainer", heads: int = 3) -> Path:
    folder = root / f"{trainer}__nnUNetPlans__3d_fullres"
    folder.mkdir(parents=True)
    p = plans(kind, channels)
    (folder / "plans.json").write_text(json.dumps(p))
    names = {str(c): n for c, n in zip(range(channels), ["T1", "T1ce", "T2", "FLAIR"])}
    (folder / "dataset.json").write_text(json.dumps({"channel_names": names, "file_ending": ".nii.gz",
                                                     "labels": _labels(heads)}))
    for i, fold in enumerate(folds):
        torch.manual_seed(i)
        net = build_network(p["configurations"]["3d_fullres"], channels, heads)
        (folder / f"fold_{fold}").mkdir()
        torch.save({"network_weights": net.state_dict(), "trainer_name": trainer,
                    "init_args": {"configuration": "3d_fullres", "fold": fold},
                    "inference_allowed_mirroring_axes": (0, 1, 2), "current_epoch": 1,
                    "logging": {"ema_fg_dice": [np.float32(0.5)]}},
                   folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def write_scan(path: Path, shape=(20, 24, 18), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.normal(100, 20, shape).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((1.0, 1.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path
