"""Stand-in TotalSegmentator part folders (real task folder names, small label sets, seeded random networks)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from medseg.nnunet.network import build_network
from medseg.totalseg.tasks import parse_task, task_names
from tests._standins import sharpen_heads
from tests.nnunet._synthetic import plans

# the label sets each part's dataset.json must hold (24/26/18/23/26 for the 1.5 mm parts, 117 for 3/6 mm)
PART_LABELS = {p.task: list(p.labels) for name in task_names()
               for p in parse_task(f"totalsegmentator:{name}").parts}


def make_part(root: Path, task: int, dataset: str, model: str, spacing_mm: float,
              patch: tuple[int, int, int] = (16, 16, 16), labels: list[str] | None = None) -> Path:
    folder = root / dataset / model
    folder.mkdir(parents=True)
    p = plans()
    config = p["configurations"]["3d_fullres"]
    config["spacing"] = [spacing_mm] * 3
    config["patch_size"] = list(patch)
    config.update({"resampling_fn_seg": "resample_data_or_seg_to_shape", "batch_dice": False,
                   "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                   "median_image_size_in_voxels": [100, 100, 100]})
    p["dataset_name"] = dataset
    p["original_median_spacing_after_transp"] = [spacing_mm] * 3
    p["original_median_shape_after_transp"] = [100, 100, 100]
    config["normalization_schemes"] = ["CTNormalization"]
    p["foreground_intensity_properties_per_channel"] = {"0": {"mean": 50.0, "std": 100.0,
                                                              "percentile_00_5": -500.0, "percentile_99_5": 500.0}}
    (folder / "plans.json").write_text(json.dumps(p))
    names = PART_LABELS[task] if labels is None else labels
    labels = {"background": 0, **{n: i + 1 for i, n in enumerate(names)}}
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
                                                     "labels": labels}))
    torch.manual_seed(task)
    net = build_network(config, 1, len(labels))
    sharpen_heads(net.state_dict())  # random but decisive heads: every class wins somewhere
    (folder / "fold_0").mkdir()
    torch.save({"network_weights": net.state_dict(), "trainer_name": model.split("__")[0],
                "init_args": {"configuration": "3d_fullres", "fold": 0},
                "inference_allowed_mirroring_axes": (0, 1, 2)}, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def make_task(root: Path, name: str, skip: tuple[int, ...] = (), patch: tuple[int, int, int] = (16, 16, 16)
              ) -> list[Path]:
    """``root/nnunet/results/<dataset>/<model>`` for every part of ``name`` (except ``skip``)."""
    task = parse_task(f"totalsegmentator:{name}")
    results = root / "nnunet" / "results"
    return [make_part(results, p.task, p.dataset, p.model, task.spacing_mm, patch)
            for p in task.parts if p.task not in skip and not (results / p.relative).exists()]


def write_ct(path: Path, shape=(22, 18, 14), spacing=(1.5, 1.5, 1.5), seed: int = 0) -> Path:
    """A small CT-like volume on a non-canonical (LPS-like, one axis flipped) grid."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    data = 400 * np.sin(3 * grid[0]) * np.cos(2 * grid[1]) + 200 * grid[2] + rng.normal(0, 30, shape)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [10.0, 20.0, -30.0]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.int16), affine), path)
    return path
