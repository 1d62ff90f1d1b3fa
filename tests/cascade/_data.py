"""A tiny synthetic CT-like dataset (bright box in noise) and a two-stage recipe for cascade training tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medseg.io import write_image

LABELS = {"0": "background", "1": "organ"}


def make_dataset(root: Path, n: int = 3, shape=(32, 32, 32), spacing: float = 2.0, seed: int = 0) -> Path:
    """``n`` cases: a 6-10 voxel box of +300 HU in noise around 0 HU, label 1 on the box."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([spacing, spacing, spacing, 1.0])
    training = []
    for i in range(n):
        image = rng.normal(0.0, 20.0, shape).astype(np.float32)
        label = np.zeros(shape, np.uint8)
        size = rng.integers(6, 11, 3)
        lo = [int(rng.integers(2, s - z - 2)) for s, z in zip(shape, size)]
        box = tuple(slice(a, a + z) for a, z in zip(lo, size))
        image[box] += 300.0
        label[box] = 1
        write_image(image[None], root / "imagesTr" / f"case{i}.nii.gz", affine=affine)
        write_image(label[None], root / "labelsTr" / f"case{i}.nii.gz", affine=affine, dtype="uint8")
        training.append({"image": f"imagesTr/case{i}.nii.gz", "label": f"labelsTr/case{i}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"name": "boxes", "modality": {"0": "CT"}, "labels": LABELS,
                                                   "training": training}))
    return root


def recipe_text(dataset: Path, out: Path, *, labels2: dict | None = None, folds: int = 2,
                spacing1: float = 4.0, spacing2: float = 2.0) -> str:
    """Tiny stunet_t (width 4) stages: 1 epoch x 2 iterations each, 16^3 patches."""
    def table(labels: dict) -> str:
        return "{ " + ", ".join(f'"{k}" = "{v}"' for k, v in labels.items()) + " }"

    def stage(name: str, spacing: float, labels: dict) -> str:
        return f"""
[{name}.data]
dataset = "{dataset}"
labels = {table(labels)}
[{name}.model]
name = "stunet_t"
overrides = {{ width = 4 }}
[{name}.plan]
auto = true
spacing = [{spacing}, {spacing}, {spacing}]
roi_size = [16, 16, 16]
[{name}.train]
epochs = 1
iterations_per_epoch = 2
batch_size = 1
val_every = 1
num_workers = 0
augmentation = "none"
threads = 1
lr = 0.01
output = "{out / name}"
"""
    head = f'[cascade]\nfolds = {folds}\nmargin_mm = 6.0\nsigma_mm = 0.0\ntargets = ["organ"]\n'
    return head + stage("stage1", spacing1, LABELS) + stage("stage2", spacing2, labels2 or LABELS)
