"""browse: a montage without ipywidgets, a working slider with it."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.viz import browse


def test_static_montage_spans_the_labelled_slices(volume):
    image, labels, spacing = volume
    fig = browse(image, labels, spacing=spacing, view="axial", interactive=False, montage=4)
    shown = [a for a in fig.axes if a.get_visible()]
    assert len(shown) == 4
    slices = [int(a.get_title().split()[1].split("/")[0]) for a in shown]
    assert slices[0] == 3 and slices[-1] == 7      # labels occupy k = 2..6 (1-based 3..7)
    assert all(a.get_aspect() == 1.0 for a in shown)


def test_sagittal_montage_aspect(volume):
    image, labels, spacing = volume
    fig = browse(image, labels, spacing=spacing, view="sagittal", interactive=False)
    (x0, x1), (y0, y1) = fig.axes[0].get_xlim(), fig.axes[0].get_ylim()
    assert (abs(x1 - x0), abs(y1 - y0)) == pytest.approx((16.0, 30.0))


def test_unknown_view(volume):
    image, labels, spacing = volume
    with pytest.raises(MedsegError, match="view"):
        browse(image, labels, spacing=spacing, view="oblique", interactive=False)


class _Widget:
    def __init__(self, *args, **kwargs):
        self.__dict__.update(kwargs)
        self.args = args
        self.callbacks = []

    def observe(self, callback, names=None):
        self.callbacks.append(callback)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def clear_output(self, wait=False):
        pass


def test_slider_redraws_the_chosen_slice(volume, monkeypatch):
    fake = types.ModuleType("ipywidgets")
    fake.IntSlider = fake.Output = fake.VBox = _Widget
    monkeypatch.setitem(sys.modules, "ipywidgets", fake)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    image, labels, spacing = volume
    fig = browse(image, labels, spacing=spacing, view="coronal", interactive=True)
    box = fig.medseg_widget
    assert isinstance(box, _Widget)
    [slider_widget] = [w for w in box.args[0] if hasattr(w, "max")]
    assert slider_widget.max == 15                  # 16 coronal slices
    slider_widget.callbacks[0]({"new": 2})
    assert "3/16" in fig.axes[0].get_title()
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), image[:, 2, :].T)
    assert fig in shown


def test_outside_a_kernel_the_default_is_the_montage(volume):
    image, labels, spacing = volume
    fig = browse(image, labels, spacing=spacing)            # pytest is no Jupyter kernel
    assert not hasattr(fig, "medseg_widget")
    assert len([a for a in fig.axes if a.get_visible()]) > 1
