"""landmark_overlay: one dot per landmark and one line per template edge, organ colours, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection

from medseg.core.errors import MedsegError
from medseg.models import get_card
from medseg.models._graph import GraphTemplate
from medseg.models.hybridgnet import write_landmarks_json
from medseg.viz import label_color, landmark_overlay

ORGANS = (("right_lung", 44), ("left_lung", 50))


def _ellipses(shift: float = 0.0) -> dict[str, np.ndarray]:
    graph = {}
    for k, (name, n) in enumerate(ORGANS):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        graph[name] = np.stack([60 + 130 * k + 40 * np.cos(t) + shift, 120 + 70 * np.sin(t)], 1)
    return graph


def _collections(fig):
    ax = fig.axes[0]
    nodes = [c for c in ax.collections if isinstance(c, PathCollection)]
    edges = [c for c in ax.collections if isinstance(c, LineCollection)]
    return nodes, edges


def test_nodes_and_edges_of_the_model_template():
    image = np.random.default_rng(0).uniform(0, 255, (240, 256))
    fig = landmark_overlay(image, _ellipses(), template=get_card("hybridgnet"))
    [nodes], [edges] = _collections(fig)
    assert len(nodes.get_offsets()) == 94
    assert len(edges.get_segments()) == 94          # two closed contours: one edge per landmark
    np.testing.assert_allclose(nodes.get_offsets()[:44], _ellipses()["right_lung"])
    colours = np.asarray(nodes.get_facecolors())[:, :3]
    np.testing.assert_allclose(colours[0], label_color(1))
    np.testing.assert_allclose(colours[-1], label_color(2))
    assert fig.axes[0].get_aspect() == 1.0
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "right_lung (44 landmarks)", "left_lung (50 landmarks)"]


def test_edges_follow_a_given_template_and_json_file(tmp_path):
    image = np.zeros((240, 256), np.uint8)
    path = tmp_path / "case.landmarks.json"
    write_landmarks_json(path, _ellipses(), image_shape=image.shape, model="hybridgnet")
    fig = landmark_overlay(image, path, template=GraphTemplate(ORGANS), reference=_ellipses(shift=3))
    [nodes], [edges] = _collections(fig)
    segments = edges.get_segments()
    # the first organ's last edge closes its contour: node 43 back to node 0
    assert any(np.allclose(s, _ellipses()["right_lung"][[0, 43]]) for s in segments)
    assert "reference" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_wrong_image_or_template_is_a_medseg_error(tmp_path):
    path = tmp_path / "case.landmarks.json"
    write_landmarks_json(path, _ellipses(), image_shape=(240, 256))
    with pytest.raises(MedsegError, match="predicted on"):
        landmark_overlay(np.zeros((100, 100)), path)
    with pytest.raises(MedsegError, match="landmarks for a template"):
        landmark_overlay(np.zeros((240, 256)), {"right_lung": np.zeros((10, 2)), "left_lung": np.zeros((50, 2))},
                         template=get_card("hybridgnet"))
    with pytest.raises(MedsegError):
        landmark_overlay(np.zeros((2, 3, 240, 256)), _ellipses())
