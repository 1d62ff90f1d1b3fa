"""compare: reference | prediction | disagreement, false positives and negatives in their own colours."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from medseg.core.errors import MedsegError
from medseg.viz import FALSE_NEGATIVE, FALSE_POSITIVE, WRONG_LABEL, compare
from medseg.viz.comparison import disagreement


def _colours(ax):
    rgba = np.asarray(ax.images[-1].get_array())
    return {tuple(np.round(c[:3].astype(float), 4).tolist()) for c in rgba.reshape(-1, 4) if c[3] > 0}


def test_disagreement_kinds():
    pred = np.array([0, 1, 0, 2, 1, 2])
    ref = np.array([0, 0, 1, 1, 1, 2])
    assert disagreement(pred, ref).tolist() == [0, 1, 2, 3, 0, 0]


def test_layout_aspect_and_colours(volume):
    image, reference, spacing = volume
    prediction = reference.copy()
    prediction[0:3, 0:3, :] = 1                   # false positive (a column through every axial slice)
    prediction[4:9, 4:10, 3] = 0                  # false negative (slice k=3 of label 1)
    prediction[11:13, 5:11, 2:6] = 1              # wrong label inside label 2
    fig = compare(image, prediction, reference, spacing=spacing, names=["background", "a", "b"])
    axes = fig.axes
    assert len(axes) == 9
    assert [a.get_title().split(",")[0] for a in axes[:3]] == ["reference", "prediction", "disagreement"]
    for ax in axes:
        assert ax.get_aspect() == 1.0
    (x0, x1), (y0, y1) = axes[3].get_xlim(), axes[3].get_ylim()    # coronal: 20 mm wide, 30 mm tall
    assert (abs(x1 - x0), abs(y1 - y0)) == pytest.approx((20.0, 30.0))
    shown = _colours(axes[2])                      # axial k=3: the slice with the most disagreement
    assert "4/10" in axes[2].get_title()
    expected = {tuple(np.round(to_rgb(c), 4).tolist()) for c in (FALSE_POSITIVE, FALSE_NEGATIVE, WRONG_LABEL)}
    assert shown == expected
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["a", "b"]
    assert [t.split(" (")[0] for t in labels[2:]] == ["false positive", "false negative", "wrong label"]
    assert "Dice" in fig._suptitle.get_text()


def test_default_slice_shows_the_most_disagreement(volume):
    image, reference, spacing = volume
    prediction = reference.copy()
    prediction[:, :, 8] = 1                        # a whole wrong axial slice at k=8
    fig = compare(image, prediction, reference, spacing=spacing, views=["axial"])
    assert "9/10" in fig.axes[0].get_title()


def test_prediction_shape_mismatch_is_a_medseg_error(volume):
    image, reference, spacing = volume
    with pytest.raises(MedsegError, match="prediction"):
        compare(image, reference[:-1], reference, spacing=spacing)
