"""2D images (PNG masks, X-rays) in the volume viewers: one panel, shown as image viewers show the file."""
from __future__ import annotations

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.io import read_image, write_image
from medseg.viz import compare, orthogonal_slices


@pytest.fixture
def pictures(tmp_path):
    """An asymmetric 30 x 40 picture (rows x columns) with reference and prediction masks, as PNG files."""
    rows, cols = 30, 40
    photo = np.tile(np.arange(cols, dtype=np.uint8) * 5, (rows, 1))
    photo[:5] = 250                                   # a bright band along the top rows
    ref = np.zeros((rows, cols), np.uint8)
    ref[10:20, 5:15] = 1
    pred = np.zeros_like(ref)
    pred[10:20, 8:18] = 1
    paths = {}
    for name, array in (("image", photo), ("ref", ref), ("pred", pred)):
        paths[name] = tmp_path / f"{name}.png"
        write_image(array.T[None], paths[name])      # medseg 2D layout: (C, x = column, y = row)
    return paths, photo, ref, pred


def _shown(ax) -> np.ndarray:
    """The grey image of an axis as it appears on screen (top row first)."""
    image = ax.images[0]
    data = np.asarray(image.get_array())
    return data[::-1] if image.origin == "lower" else data


def test_png_is_shown_as_the_file_with_one_panel_per_column(pictures):
    paths, photo, ref, pred = pictures
    assert read_image(paths["image"]).meta["spatial_shape"] == (40, 30)
    fig = compare(paths["image"], paths["pred"], paths["ref"])
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 3                             # reference | prediction | disagreement, one row
    np.testing.assert_array_equal(_shown(axes[0]), photo)   # not mirrored, not upside down
    texts = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "mm²" in texts and "mL" not in texts       # areas for 2D
    fp, fn = int(((pred > 0) & (ref == 0)).sum()), int(((pred == 0) & (ref > 0)).sum())
    assert f"false positive ({fp:.1f} mm²)" in texts and f"false negative ({fn:.1f} mm²)" in texts


def test_pixel_spacing_sets_the_aspect(pictures):
    paths, *_ = pictures
    fig = orthogonal_slices(paths["image"], paths["ref"], spacing=(0.5, 2.0))   # mm per column, per row
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 1
    left, right, bottom, top = axes[0].images[0].get_extent()
    assert (right - left) / (top - bottom) == pytest.approx(40 * 0.5 / (30 * 2.0))
    assert not [t for t in axes[0].texts if t.get_text() in ("L", "R", "A", "P")]   # no patient frame in 2D


def test_2d_image_with_3d_labels_is_a_clear_error(pictures, volume):
    paths, *_ = pictures
    with pytest.raises(MedsegError, match="not 2D"):
        orthogonal_slices(paths["image"], volume[1])
