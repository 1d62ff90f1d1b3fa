"""Mask <-> landmark conversion: tracing, resampling, lung splitting, rasterising, letterboxing."""
from __future__ import annotations

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.transforms.landmarks import (
    LandmarkError,
    Letterbox,
    landmarks_to_mask,
    mask_to_landmarks,
    resample_contour,
    signed_area,
    split_lungs,
    to_grey,
    trace_outer_contour,
)

LUNGS = (("right_lung", 44), ("left_lung", 50))


def blob(cx, cy, a, b, wobble=0.0, phase=0.0, n=2000):
    """A dense closed outline: an upright ellipse with a smooth 3-lobed wobble (lung-like)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 1 + wobble * np.sin(3 * t + phase)
    return np.stack([cx + a * r * np.cos(t), cy + b * r * np.sin(t)], 1)


def two_lungs(shape=(120, 160)):
    h, w = shape
    right = blob(w * 0.3, h * 0.5, w * 0.12, h * 0.35)
    left = blob(w * 0.7, h * 0.5, w * 0.13, h * 0.38)
    return landmarks_to_mask({"r": right, "l": left}, shape)


def test_round_trip_landmarks_raster_landmarks_within_a_pixel():
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(12):
        a = rng.uniform(10, 22)
        dense = blob(*rng.uniform(45, 55, 2), a, rng.uniform(1.3 * a, 40), rng.uniform(0, 0.1), rng.uniform(0, 6))
        for n in (44, 50):
            start = resample_contour(dense, n)
            raster = landmarks_to_mask({"organ": start}, (100, 100))
            again = resample_contour(trace_outer_contour(raster > 0), n)
            worst = max(worst, float(np.linalg.norm(again - start, axis=1).max()))
    assert worst < 1.0


def test_resample_starts_at_top_runs_clockwise_at_equal_spacing():
    outline = blob(50, 50, 20, 35, 0.05, 1.0)
    points = resample_contour(outline, 44)
    assert points.shape == (44, 2)
    assert points[0, 1] == pytest.approx(outline[:, 1].min(), abs=0.5)
    assert signed_area(points) > 0                         # clockwise on screen (y down)
    assert points[1, 0] > points[0, 0]                      # so the second point lies to the right of the top
    steps = np.linalg.norm(np.diff(np.vstack([points, points[:1]]), axis=0), axis=1)
    assert steps.std() / steps.mean() < 0.05
    np.testing.assert_allclose(resample_contour(outline[::-1], 44), points, atol=1e-6)


def test_split_lungs_uses_position_and_gives_template_counts():
    mask = two_lungs()
    lungs = split_lungs(mask)
    assert np.nonzero(lungs["right_lung"])[1].mean() < np.nonzero(lungs["left_lung"])[1].mean()
    landmarks = mask_to_landmarks(mask * 255, LUNGS)
    assert landmarks["right_lung"].shape == (44, 2) and landmarks["left_lung"].shape == (50, 2)
    assert landmarks["right_lung"][:, 0].max() < 80 < landmarks["left_lung"][:, 0].min()


def test_ignore_value_counts_as_lung_and_specks_are_dropped():
    mask = two_lungs().astype(np.uint8) * 255
    mask[55:65, 30:60] = np.where(mask[55:65, 30:60] > 0, 127, 0)   # a device drawn as "ignore" across a lung
    mask[2, 2] = 255                                                 # a one-pixel speck
    lungs = split_lungs(mask)
    assert lungs["right_lung"][60, 48]


def test_lung_split_in_parts_is_rejected():
    mask = two_lungs()
    mask[58:62, :] = 0                                      # cut both lungs in two
    with pytest.raises(LandmarkError, match="4 separate"):
        split_lungs(mask)


def test_lung_cut_by_the_border_is_rejected():
    mask = two_lungs()
    mask[40:90, 0:40] = 1                                   # right lung runs off the image's left edge
    with pytest.raises(LandmarkError, match="border"):
        split_lungs(mask)
    split_lungs(mask, border_tolerance=1.0)                # allowed when the caller accepts it


def test_landmarks_to_mask_labels_follow_the_order():
    mask = two_lungs()
    landmarks = mask_to_landmarks(mask, LUNGS)
    raster = landmarks_to_mask(landmarks, mask.shape, order=["right_lung", "left_lung"])
    assert set(np.unique(raster)) == {0, 1, 2}
    dice = 2 * ((raster > 0) & (mask > 0)).sum() / ((raster > 0).sum() + (mask > 0).sum())
    assert dice > 0.97


def test_to_grey_converts_colour_layouts():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 30, 3)).astype(np.uint8)
    grey = to_grey(rgb)
    assert grey.shape == (20, 30)
    np.testing.assert_allclose(to_grey(np.moveaxis(rgb, -1, 0)), grey)
    np.testing.assert_allclose(to_grey(np.dstack([rgb, np.full((20, 30), 255)])), grey)
    assert to_grey(rgb[..., 0]).shape == (20, 30)
    with pytest.raises(MedsegError):
        to_grey(np.zeros((5, 20, 30)))


def test_letterbox_maps_points_both_ways_onto_the_same_pixel():
    image = np.zeros((60, 100), np.float32)
    image[20, 70] = 1.0
    box = Letterbox(60, 100, 50)
    out = box.apply(image)
    assert out.shape == (50, 50)
    peak = np.unravel_index(np.argmax(out), out.shape)
    mapped = box.to_input(np.array([[70.0, 20.0]]))[0]
    assert abs(mapped[0] - peak[1]) <= 1 and abs(mapped[1] - peak[0]) <= 1
    points = np.array([[0.0, 0.0], [99.0, 59.0], [12.3, 45.6]])
    np.testing.assert_allclose(box.to_original(box.to_input(points)), points, atol=1e-9)
