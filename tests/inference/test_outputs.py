"""Outputs keep the input's geometry in every format and are checked before they appear."""
import json

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.inference import outputs
from medseg.inference.outputs import (
    safe_names,
    write_multilabel,
    write_per_class,
    write_verified,
)
from medseg.io import read_image, write_image
from tests.conftest import random_oblique_affine
from tests.inference._models import expected, noise_volume, threshold_model

NAMES = ("background", "low", "high")


@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd", ".mha"])
def test_prediction_round_trip_keeps_geometry_in_every_format(tmp_path, rng, ext):
    from medseg.inference.predictor import Predictor

    affine = random_oblique_affine(rng, spacing=(0.8, 1.1, 3.0))
    volume = noise_volume((19, 23, 11), rng)
    scan = tmp_path / f"scan{ext}"
    write_image(volume[None], scan, affine=affine)
    image = read_image(scan)
    labels = Predictor(threshold_model()).predict(image).labels
    out = tmp_path / f"seg{ext}"
    write_multilabel(labels[0].numpy(), labels.affine.numpy(), out, NAMES, "threshold")
    back = read_image(out)
    assert back.shape == image.shape and back.meta["original_dtype"] == "uint8"
    np.testing.assert_allclose(back.affine.numpy(), image.affine.numpy(), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(back[0].numpy(), expected(image[0].numpy()))
    if ext == ".nii.gz":
        import nibabel as nib

        (extension,) = nib.load(str(out)).header.extensions
        assert json.loads(extension.get_content())["labels"]["2"] == "high"


def test_a_mismatching_write_is_caught_and_leaves_nothing(tmp_path, monkeypatch):
    real = outputs.write_image

    def shifted(data, path, *, affine, **kw):
        bad = np.array(affine, copy=True)
        bad[0, 3] += 1.0
        return real(data, path, affine=bad, **kw)

    monkeypatch.setattr(outputs, "write_image", shifted)
    target = tmp_path / "seg.nii.gz"
    with pytest.raises(MedsegError, match="affine differs"):
        write_verified(np.zeros((1, 4, 4, 4), np.uint8), np.eye(4), target, dtype="uint8")
    assert list(tmp_path.iterdir()) == []


def test_per_class_folder_has_one_mask_per_class(tmp_path, rng):
    labels = rng.integers(0, 3, (6, 7, 8)).astype(np.uint8)
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "stale.nii.gz").write_bytes(b"old run")
    written = write_per_class(labels, np.eye(4), folder, NAMES, ".nii.gz", "threshold")
    assert sorted(p.name for p in folder.iterdir()) == ["high.nii.gz", "low.nii.gz"]
    assert set(written) == {"class:low", "class:high"}
    mask = read_image(folder / "high.nii.gz")[0].numpy()
    np.testing.assert_array_equal(mask, (labels == 2).astype(np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["case"]  # no staging folders left behind


def test_safe_names_are_unique_and_portable():
    names = ("background", "Left Lung", "left/lung", "")
    assert safe_names(names) == ["background", "Left_Lung", "left_lung", "label_3"]
    assert safe_names(("a", "a")) == ["a", "a_1"]


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    real = outputs.write_image

    def interrupted(data, path, **kw):
        real(data, path, **kw)          # the temporary file is complete on disk...
        raise KeyboardInterrupt         # ...when Ctrl-C arrives

    monkeypatch.setattr(outputs, "write_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_multilabel(np.zeros((4, 4, 4), np.uint8), np.eye(4), tmp_path / "seg.nii.gz", NAMES, "m")
    assert list(tmp_path.iterdir()) == []
