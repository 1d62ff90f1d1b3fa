import numpy as np
import torch
from monai.data import MetaTensor

from medseg.transforms import ResampleToSpacingd, resample_to_spacing


def _world(affine, index):
    return (np.asarray(affine) @ np.append(index, 1.0))[:3]


def test_linear_ramp_is_reproduced_at_the_new_voxel_centres(rng):
    affine = np.eye(4)
    affine[:3, :3] = np.diag([0.5, 2.0, 1.0])
    affine[:3, 3] = rng.uniform(-50, 50, 3)
    shape = (40, 10, 12)
    i = np.arange(shape[0], dtype=np.float32)[:, None, None] * np.ones(shape, np.float32)
    image = MetaTensor(torch.from_numpy(i * 0.5)[None], affine=torch.as_tensor(affine))  # value = x offset in mm
    out = resample_to_spacing(image, (1.0, 1.0, 1.0))
    new_affine = out.affine.numpy()
    assert tuple(out.shape[1:]) == (20, 20, 12)
    for j in range(1, 19):  # interior voxels: value equals the world x offset from voxel 0 of the input
        x_mm = _world(new_affine, [j, 5, 5])[0] - affine[0, 3]
        assert abs(float(out[0, j, 5, 5]) - x_mm) < 1e-4


def test_nearest_mode_keeps_label_values_and_no_change_returns_input():
    labels = MetaTensor(torch.randint(0, 4, (1, 9, 9, 9)).to(torch.uint8), affine=torch.eye(4))
    same = ResampleToSpacingd("label", (1.0, 1.0, 1.0), modes="nearest")({"label": labels})["label"]
    assert same is labels
    down = resample_to_spacing(labels, (3.0, 3.0, 3.0), mode="nearest")
    assert down.dtype == torch.uint8 and tuple(down.shape[1:]) == (3, 3, 3)
    assert set(down.unique().tolist()) <= set(labels.unique().tolist())
