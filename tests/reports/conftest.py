"""Small label-map folders on disk: three cases with two labels, anisotropic voxels."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

AFFINE = np.diag([0.8, 1.2, 2.0, 1.0])
AFFINE[:3, 3] = (-20.0, 10.0, 5.0)


def save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def blob(shape, centre, radii, label=1, dtype=np.uint8):
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    return (inside * label).astype(dtype)


def make_case(shift: int, shape=(30, 26, 16)):
    ref = blob(shape, (10, 12, 8), (6, 5, 4)) + blob(shape, (21, 12, 8), (4, 4, 3), label=2)
    pred = np.roll(ref, shift, axis=0)
    return pred, ref


@pytest.fixture
def folders(tmp_path):
    """pred/ and ref/ with cases a, b, c matched, 'extra' only in pred/, 'lonely' only in ref/."""
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for name, shift in (("a", 0), ("b", 1), ("c", 2)):
        pred, ref = make_case(shift)
        if name == "c":
            pred[pred == 2] = 0  # label 2 missed entirely
            pred[0:2, 0:2, 0:2] = 3  # a label the reference does not have
        save(pred_dir / f"{name}.nii.gz", pred)
        save(ref_dir / f"{name}.nii.gz", ref)
    save(pred_dir / "extra.nii.gz", make_case(0)[0])
    save(ref_dir / "lonely.nii.gz", make_case(0)[1])
    (ref_dir / "dataset.json").write_text('{"labels": {"0": "background", "1": "liver", "2": "spleen"}}')
    return pred_dir, ref_dir
