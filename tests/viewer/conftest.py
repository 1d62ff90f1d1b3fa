"""A tiny CT-like scan with one structure in the patient's right half, its label map and a reference."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHAPE = (48, 40, 24)  # RAS+: x grows to the patient's right (left -> right), y posterior -> anterior, z up
BLOB = (slice(30, 42), slice(12, 28), slice(6, 18))   # high x: the patient's right


@pytest.fixture
def case(tmp_path: Path) -> dict[str, Path]:
    from medseg.io import write_image

    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    scan = np.full(SHAPE, -1000, np.int16)
    scan[2:-2, 2:-2, :] = 40          # soft tissue body, air around it
    scan[BLOB] = 60
    labels = np.zeros(SHAPE, np.uint8)
    labels[BLOB] = 1
    reference = labels.copy()
    reference[BLOB[0], BLOB[1], 6:9] = 0      # prediction has 3 extra slices (false positive)
    reference[26:30, 12:28, 6:18] = 1         # and misses a strip (false negative)
    paths = {"scan": tmp_path / "ct.nii.gz", "labels": tmp_path / "ct_seg.nii.gz", "reference": tmp_path / "gt.nii.gz"}
    write_image(scan[None], paths["scan"], affine=affine)
    write_image(labels[None], paths["labels"], affine=affine,
                extensions={"json": {"labels": {"0": "background", "1": "spleen"}}})
    write_image(reference[None], paths["reference"], affine=affine)
    return paths
