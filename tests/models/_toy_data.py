"""Tiny on-disk datasets shaped for any registered model: channels, 2D/3D and the label setup its card asks for."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medseg.core.card import ModelCard
from medseg.io import write_image

BRATS_LABELS = {"0": "background", "1": "necrosis", "2": "edema", "4": "enhancing"}


def label_setup(card: ModelCard) -> dict[str, str]:
    """Dataset labels for the card's head: BraTS-style values for region models, one structure otherwise."""
    if card.postprocess.get("label_values"):
        return dict(BRATS_LABELS)
    return {"0": "background", "1": "blob"}


def blob_case(shape: tuple[int, ...], channels: int, labels: dict[str, str], rng: np.random.Generator):
    """An image whose intensity gives its labels away, and the label map (nested blobs for BraTS values)."""
    grid = np.indices(shape).astype(np.float32)
    centre = np.array([s / 2 for s in shape]) + rng.uniform(-1.5, 1.5, len(shape))
    radius = np.sqrt(((grid - centre.reshape(-1, *[1] * len(shape))) ** 2).sum(0))
    scale = min(shape) / 2
    label = np.zeros(shape, np.uint8)
    values = sorted(int(v) for v in labels if int(v) > 0)
    if values == [1, 2, 4]:            # whole tumour (edema) > core (necrosis) > enhancing, nested
        label[radius < 0.7 * scale] = 2
        label[radius < 0.45 * scale] = 1
        label[radius < 0.25 * scale] = 4
    else:
        label[radius < 0.5 * scale] = 1
    image = np.stack([label * (30.0 + 10 * c) + rng.normal(50, 5, shape) for c in range(channels)])
    return image.astype(np.float32), label


def write_toy_dataset(root: Path, card: ModelCard, *, n: int = 3, size: int = 16, seed: int = 0) -> Path:
    """``n`` cases in MSD layout (NIfTI for 3D, PNG for 2D) with ``card.in_channels`` channels."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    labels = label_setup(card)
    ext = ".nii.gz" if card.spatial_dims == 3 else ".png"
    shape = (size,) * card.spatial_dims
    entries = []
    for i in range(n):
        image, label = blob_case(shape, card.in_channels, labels, rng)
        if ext == ".png":
            image = image.clip(0, 255).astype(np.uint8)
        write_image(image, root / "imagesTr" / f"c{i}{ext}")
        write_image(label[None], root / "labelsTr" / f"c{i}{ext}")
        entries.append({"image": f"./imagesTr/c{i}{ext}", "label": f"./labelsTr/c{i}{ext}"})
    modality = {str(c): name for c, name in enumerate(card.channel_names)}
    (root / "dataset.json").write_text(json.dumps({"modality": modality, "labels": labels, "training": entries}),
                                       encoding="utf-8")
    return root


def toy_overrides(root: Path, card: ModelCard, output: Path) -> list[str]:
    """``--set`` values for one cheap epoch of one iteration and one validated case."""
    values = [f"data.dataset='{root}'", "data.val_fraction=0.34", f"model.name='{card.name}'",
              "plan.roi_size=[" + ", ".join(str(r) for r in card.roi_size) + "]",
              "train.epochs=1", "train.iterations_per_epoch=1", "train.batch_size=2", "train.num_workers=0",
              "train.val_every=1", "train.threads=1", "train.augmentation='none'", f"train.output='{output}'"]
    if card.spatial_dims == 3:
        values.append("plan.spacing=[1.0, 1.0, 1.0]")
    return values
