"""2D patches and 2D augmentation: the training patch sampler and the nnU-Net-like augmentation work on
(C, H, W) images, keep the window size, keep labels integral and move image and label together."""
from __future__ import annotations

import torch

from medseg.training.sampling import PatchDataset, build_augmentation


def _case() -> dict:
    label = torch.zeros(1, 40, 30, dtype=torch.long)
    label[0, 4:30, 4:10] = 1          # an asymmetric "L": flips and rotations change where it lies
    label[0, 24:30, 4:25] = 1
    return {"image": label.float() * 2.0, "label": label}


def test_2d_augmentation_moves_image_and_label_together():
    augment = build_augmentation((24, 24), spatial_dims=2, mirror_axes=(0, 1))
    dataset = PatchDataset([_case()], (24, 24), 30, foreground_fraction=1.0, augment=augment, seed=3)
    reference = PatchDataset([_case()], (24, 24), 30, foreground_fraction=1.0, augment=None, seed=3)
    changed = 0
    for i in range(len(dataset)):
        sample, plain = dataset[i], reference[i]
        assert tuple(sample["image"].shape) == (1, 24, 24) and tuple(sample["label"].shape) == (1, 24, 24)
        assert sample["label"].dtype == torch.long and set(sample["label"].unique().tolist()) <= {0, 1}
        # the image (2 on the label, 0 elsewhere, plus intensity noise) still marks the label's pixels
        agree = ((sample["image"][0] > 1.0) == (sample["label"][0] == 1)).float().mean()
        assert agree > 0.9
        changed += int(not torch.equal(sample["label"], plain["label"]))
    assert changed >= 10        # flips (p = 0.5 per axis) and affine moves happened, so the check above bites


def test_2d_patch_sampler_pads_small_images_and_finds_foreground():
    case = _case()
    dataset = PatchDataset([case], (48, 48), 10, foreground_fraction=1.0, augment=None, seed=0)
    for i in range(len(dataset)):
        sample = dataset[i]
        assert tuple(sample["image"].shape) == (1, 48, 48)     # 40x30 zero-padded to the window
        assert sample["label"].sum() == case["label"].sum()    # the whole image fits: nothing lost
