import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.inference.postprocess import PostprocessSpec, postprocess_labels

NAMES = ("background", "liver", "spleen")


def _scene():
    labels = np.zeros((30, 30, 10), dtype=np.uint8)
    labels[2:12, 2:12, 2:8] = 1          # big liver component (600 voxels)
    labels[20:22, 20:22, 2:4] = 1        # small liver island (8 voxels)
    labels[15:25, 2:12, 2:8] = 2         # spleen with a hole
    labels[19:21, 6:8, 4:6] = 0
    return labels


def test_keep_largest_by_name_leaves_other_classes_alone():
    out = postprocess_labels(_scene(), PostprocessSpec(keep_largest=("liver",)), spacing=(1, 1, 1), names=NAMES)
    assert (out == 1).sum() == 600
    assert (out == 2).sum() == 600 - 8


def test_islands_are_measured_in_mm3_with_anisotropic_spacing():
    spec = PostprocessSpec(min_island_mm3=30.0)
    kept = postprocess_labels(_scene(), spec, spacing=(1.0, 1.0, 4.0), names=NAMES)   # island = 32 mm3
    removed = postprocess_labels(_scene(), spec, spacing=(1.0, 1.0, 3.0), names=NAMES)  # island = 24 mm3
    assert (kept == 1).sum() == 608 and (removed == 1).sum() == 600


def test_fill_holes_fills_background_only():
    labels = _scene()
    labels[19, 6, 4] = 1  # another class inside the hole must survive
    out = postprocess_labels(labels, PostprocessSpec(fill_holes=True), spacing=(1, 1, 1), names=NAMES)
    assert out[19, 6, 4] == 1
    assert (out[19:21, 6:8, 4:6] == 2).sum() == 7


def test_card_mapping_is_validated():
    spec = PostprocessSpec.from_mapping({"keep_largest": True, "min_island_mm3": 200})
    assert spec.active and spec.to_dict()["min_island_mm3"] == 200.0
    assert not PostprocessSpec.from_mapping({}).active
    with pytest.raises(MedsegError):
        PostprocessSpec.from_mapping({"keep_biggest": True})
