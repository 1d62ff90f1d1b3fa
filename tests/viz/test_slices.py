"""orthogonal_slices: three views in millimetres, legend from the model card, clear errors on bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.core.errors import MedsegError
from medseg.models import get_card
from medseg.viz import label_color, orthogonal_slices


def _spans(ax):
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    return abs(x1 - x0), abs(y1 - y0)


def test_three_views_in_physical_proportions(volume):
    image, labels, spacing = volume
    fig = orthogonal_slices(image, labels, spacing=spacing)
    axial, coronal, sagittal = fig.axes[:3]
    assert [a.get_title().split()[0] for a in (axial, coronal, sagittal)] == ["axial", "coronal", "sagittal"]
    assert _spans(axial) == pytest.approx((20.0, 16.0))      # x by y, 1 mm each
    assert _spans(coronal) == pytest.approx((20.0, 30.0))    # x by z: 10 slices of 3 mm
    assert _spans(sagittal) == pytest.approx((16.0, 30.0))
    fig.canvas.draw()                                       # applies the aspect to the axes boxes
    for ax in (axial, coronal, sagittal):
        assert ax.get_aspect() == 1.0                       # one mm is one mm in both directions
        height_px = ax.get_window_extent().height
        width_px = ax.get_window_extent().width
        w, h = _spans(ax)
        assert height_px / width_px == pytest.approx(h / w, rel=0.03)


def test_affine_gives_spacing_and_orientation(volume):
    image, labels, _ = volume
    affine = np.diag([-1.0, 1.0, 3.0, 1.0])                # x stored right-to-left (LAS)
    meta = MetaTensor(torch.from_numpy(image)[None], affine=torch.from_numpy(affine))
    fig = orthogonal_slices(meta, labels)
    assert _spans(fig.axes[1]) == pytest.approx((20.0, 30.0))
    # the LAS array is flipped for display: label 1 (low i) appears on the right (high x), label 2 on the left
    overlay = np.asarray(fig.axes[0].images[1].get_array())[..., :3]
    cols_1 = np.nonzero(np.isclose(overlay, label_color(1), atol=1e-4).all(-1).any(0))[0]
    cols_2 = np.nonzero(np.isclose(overlay, label_color(2), atol=1e-4).all(-1).any(0))[0]
    assert cols_1.min() > cols_2.max()


def test_legend_names_come_from_the_card(volume):
    image, labels, spacing = volume
    card = get_card("stunet_t")
    fig = orthogonal_slices(image, labels, spacing=spacing, card=card)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == list(card.labels[1:])
    colours = [tuple(h.get_facecolor()[:3]) for h in fig.legends[0].legend_handles]
    assert colours == [pytest.approx(label_color(1)), pytest.approx(label_color(2))]


def test_label_colours_are_fixed_per_value(volume):
    image, labels, spacing = volume
    only_two = np.where(labels == 2, 2, 0)
    fig = orthogonal_slices(image, only_two, spacing=spacing, names=["bg", "a", "b"])
    overlay = np.asarray(fig.axes[1].images[1].get_array())
    shown = {tuple(np.round(c[:3].astype(float), 4).tolist()) for c in overlay.reshape(-1, 4) if c[3] > 0}
    assert shown == {tuple(np.round(label_color(2), 4).tolist())}   # label 2 keeps its colour without label 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]


def test_index_chooses_the_slices(volume):
    image, labels, spacing = volume
    fig = orthogonal_slices(image, labels, spacing=spacing, index=(3, 5, 7))
    assert [a.get_title().split()[1] for a in fig.axes[:3]] == ["8/10", "6/16", "4/20"]


@pytest.mark.parametrize("bad", ["4d", "mismatch", "2d"])
def test_bad_input_is_a_medseg_error(volume, bad):
    image, labels, spacing = volume
    if bad == "4d":
        args = (np.stack([image, image]), None)
    elif bad == "mismatch":
        args = (image, labels[:, :, :-1])
    else:
        args = (image[:, :, 0], None)
    with pytest.raises(MedsegError):
        orthogonal_slices(*args, spacing=spacing)


def test_single_channel_metatensor_from_read_image(tmp_path, volume):
    import nibabel as nib

    from medseg.io import read_image

    image, labels, _ = volume
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([1.0, 1.0, 3.0, 1.0])), path)
    fig = orthogonal_slices(read_image(path), labels)
    assert _spans(fig.axes[2]) == pytest.approx((16.0, 30.0))


def test_plain_label_array_gets_generic_names(volume):
    image, labels, spacing = volume
    fig = orthogonal_slices(image, labels, spacing=spacing)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["label 1", "label 2"]


def test_names_from_a_prediction_metatensor(volume):
    image, labels, spacing = volume
    prediction = MetaTensor(torch.from_numpy(labels)[None], meta={"labels": ["background", "head", "tail"]})
    fig = orthogonal_slices(image, prediction, spacing=spacing)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["head", "tail"]
