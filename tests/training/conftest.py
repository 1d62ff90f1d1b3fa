"""A tiny MSD-layout dataset built in code: blobs whose intensity gives away their label."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.io import write_image
from medseg.training import load_recipe


def make_msd_dataset(root: Path, n: int = 6, shape=(20, 20, 20), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    grid = np.indices(shape).astype(np.float32)
    entries = []
    for i in range(n):
        label = np.zeros(shape, np.uint8)
        c1 = rng.uniform(5, 8, 3)
        label[((grid - c1[:, None, None, None]) ** 2).sum(0) < 9] = 1
        c2 = rng.uniform(12, 15, 3)
        label[((grid - c2[:, None, None, None]) ** 2).sum(0) < 9] = 2
        image = (label * 40.0 + rng.normal(0, 8, shape)).astype(np.float32)
        affine = np.diag([1.0, 1.0, 1.0, 1.0])
        write_image(image[None], root / "imagesTr" / f"case_{i:03d}.nii.gz", affine=affine)
        write_image(label[None], root / "labelsTr" / f"case_{i:03d}.nii.gz", affine=affine)
        entries.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    meta = {"name": "blobs", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "a", "2": "b"},
            "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def msd_dataset(tmp_path: Path) -> Path:
    return make_msd_dataset(tmp_path / "data")


@pytest.fixture
def tiny_recipe(msd_dataset: Path, tmp_path: Path):
    """A recipe that trains a width-4 STU-Net-T on 16^3 patches for a handful of iterations."""
    return load_recipe(None, [
        f"data.dataset='{msd_dataset}'", "data.val_fraction=0.34",
        "model.name='stunet_t'", "model.overrides={width = 4}",
        "plan.roi_size=[16, 16, 16]",
        "train.epochs=3", "train.iterations_per_epoch=4", "train.batch_size=2", "train.num_workers=0",
        "train.val_every=1", "train.threads=1", f"train.output='{tmp_path / 'run'}'", "train.lr=0.01",
    ])
