"""Analytic cases with known answers, and the empty-mask rule."""
import json
import math

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.metrics import EMPTY_RULE, compute_metrics, definitions


def cube(shape, start, size, label=1):
    out = np.zeros(shape, np.uint8)
    out[tuple(slice(s, s + size) for s in start)] = label
    return out


@pytest.mark.parametrize("convention", ["monai", "surface-distance"])
@pytest.mark.parametrize(("axis", "spacing"), [(0, (1.0, 1.0, 1.0)), (0, (2.0, 1.0, 1.0)), (2, (0.7, 0.9, 3.0))])
def test_shifted_cubes(axis, spacing, convention):
    """Cube of side 10 against the same cube moved 3 voxels: overlap 7/10, Hausdorff = 3 voxels on that axis."""
    shape = (32, 30, 28)
    ref = cube(shape, (8, 8, 8), 10)
    start = [8, 8, 8]
    start[axis] += 3
    pred = cube(shape, start, 10)
    [m] = compute_metrics(pred, ref, spacing, convention=convention)
    assert m.dice == pytest.approx(0.7)
    assert m.iou == pytest.approx(700 / 1300)
    assert m.precision == m.sensitivity == pytest.approx(0.7)
    voxel_ml = np.prod(spacing) / 1000
    assert m.volume_ref == m.volume_pred == pytest.approx(1000 * voxel_ml)
    assert m.volume_difference == 0
    assert m.hd == pytest.approx(3 * spacing[axis], abs=1e-6)
    assert m.hd95 <= m.hd
    assert 0 < m.assd < m.hd
    assert m.msd_pred_to_ref == pytest.approx(m.msd_ref_to_pred, abs=1e-6)  # the shift is symmetric


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.1, 2.5)])
def test_concentric_cubes_monai(spacing):
    """Reference cube grown by k voxels on every side: every inner edge voxel is exactly k voxels from the
    outer edge along some axis (isotropic: k mm), and the farthest outer corner is k voxel diagonals away."""
    k, shape = 2, (30, 30, 30)
    ref = cube(shape, (10, 10, 10), 8)
    pred = cube(shape, (10 - k, 10 - k, 10 - k), 8 + 2 * k)
    [m] = compute_metrics(pred, ref, spacing, tolerance=k * min(spacing))
    assert m.hd == pytest.approx(k * float(np.linalg.norm(spacing)), abs=1e-5)
    assert m.dice == pytest.approx(2 * 512 / (512 + 1728))
    assert m.precision == pytest.approx(512 / 1728) and m.sensitivity == 1.0
    assert m.volume_difference == pytest.approx((1728 - 512) * np.prod(spacing) / 1000)
    if len(set(spacing)) == 1:
        assert m.msd_ref_to_pred == pytest.approx(k, abs=1e-6)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.6, 1.2, 2.0)])
def test_concentric_spheres(spacing):
    """Physical spheres of radius 10 and 14 mm, rasterised: the surfaces are 4 mm apart everywhere."""
    shape = tuple(int(40 / s) for s in spacing)
    grid = np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grid))
    ref, pred = (radius <= 10).astype(np.uint8), (radius <= 14).astype(np.uint8)
    for convention in ("monai", "surface-distance"):
        [m] = compute_metrics(pred, ref, spacing, convention=convention, tolerance=2.0)
        tol = max(spacing)  # rasterisation moves each surface by up to half a voxel diagonal
        for value in (m.hd, m.hd95, m.assd, m.msd_pred_to_ref, m.msd_ref_to_pred):
            assert abs(value - 4.0) <= tol, (convention, value)
        assert m.nsd < 0.2  # nothing is within 2 mm of the other surface
        assert m.dice == pytest.approx(2 * 10**3 / (10**3 + 14**3), abs=0.03)


def test_cube_surfel_area_matches_marching_cubes_polyhedron():
    """A box of L0 x L1 x L2 voxels has marching-cubes area: flat faces, chamfered edges, corner triangles."""
    from medseg.metrics.surface import surfel_distances

    spacing = (0.5, 1.5, 2.0)
    size = (6, 7, 9)
    mask = np.zeros((12, 13, 15), bool)
    mask[2:8, 3:10, 2:11] = True
    areas = surfel_distances(mask, mask, spacing).ref_areas
    s, n = np.array(spacing), np.array(size) - 1  # face extents between voxel centres
    faces = 2 * (n[1] * s[1] * n[2] * s[2] + n[0] * s[0] * n[2] * s[2] + n[0] * s[0] * n[1] * s[1])
    edges = 4 * sum(n[a] * s[a] * 0.5 * math.hypot(s[b], s[c]) for a, b, c in ((0, 1, 2), (1, 0, 2), (2, 0, 1)))
    corners = 8 * math.sqrt((s[1] * s[2]) ** 2 + (s[0] * s[2]) ** 2 + (s[0] * s[1]) ** 2) / 8
    assert areas.sum() == pytest.approx(faces + edges + corners, rel=1e-12)


def test_square_contour_length_2d():
    from medseg.metrics.surface import surfel_distances

    mask = np.zeros((10, 12), bool)
    mask[2:7, 3:10] = True  # 5 x 7 pixels
    spacing = (0.5, 2.0)
    lengths = surfel_distances(mask, mask, spacing).ref_areas
    expected = 2 * (4 * 0.5 + 6 * 2.0) + 4 * math.hypot(0.5, 2.0) / 2
    assert lengths.sum() == pytest.approx(expected)


@pytest.mark.parametrize("convention", ["monai", "surface-distance"])
def test_empty_mask_rules(convention):
    shape = (20, 20, 20)
    ref = cube(shape, (5, 5, 5), 6, label=1) + cube(shape, (14, 14, 14), 3, label=3)
    pred = cube(shape, (5, 5, 5), 6, label=2) + cube(shape, (14, 14, 14), 3, label=3)
    by_label = {m.label: m for m in compute_metrics(pred, ref, (1, 1, 2), labels=[1, 2, 3, 4], convention=convention)}
    missed, extra, perfect, absent = by_label[1], by_label[2], by_label[3], by_label[4]
    for m in (missed, extra):
        assert m.distances_infinite
        assert m.dice == m.iou == m.precision == m.sensitivity == m.nsd == 0.0
        assert m.hd == m.hd95 == m.assd == m.msd_pred_to_ref == m.msd_ref_to_pred == math.inf
        row = m.to_dict()
        assert row["hd"] is None and row["hd95"] is None and row["assd"] is None
        assert row["distances_infinite"] is True
        json.dumps(row, allow_nan=False)  # strict JSON: no Infinity/NaN tokens
    assert missed.empty_prediction and not missed.empty_reference
    assert missed.volume_difference == pytest.approx(-216 * 2 / 1000)
    assert extra.empty_reference and not extra.empty_prediction
    assert absent.empty_reference and absent.empty_prediction and not absent.distances_infinite
    assert absent.dice == absent.nsd == 1.0 and absent.hd == absent.hd95 == absent.assd == 0.0
    assert perfect.dice == 1.0 and perfect.hd == 0.0 and perfect.nsd == 1.0
    assert "Both prediction and reference empty" in EMPTY_RULE


def test_default_labels_are_the_union_and_bool_masks_work():
    ref = np.zeros((10, 10), np.int16)
    ref[2:5, 2:5] = 1
    pred = np.zeros((10, 10), np.int16)
    pred[6:8, 6:8] = 7
    assert [m.label for m in compute_metrics(pred, ref)] == [1, 7]
    [m] = compute_metrics(ref > 0, ref > 0)
    assert m.label == 1 and m.dice == 1.0


def test_bad_inputs_raise_medseg_errors():
    a = np.zeros((5, 5, 5), np.uint8)
    with pytest.raises(MedsegError, match="shape"):
        compute_metrics(a, np.zeros((5, 5, 4), np.uint8))
    with pytest.raises(MedsegError, match="non-integer"):
        compute_metrics(a, np.full((5, 5, 5), 0.3))
    with pytest.raises(MedsegError, match="spacing"):
        compute_metrics(a, a, spacing=(1, 1))
    with pytest.raises(MedsegError, match="convention"):
        compute_metrics(a, a, convention="medpy")
    with pytest.raises(MedsegError, match="negative"):
        compute_metrics(a.astype(np.int8) - 1, a)


def test_definitions_name_every_metric_and_the_tolerance():
    for convention in ("monai", "surface-distance"):
        text = definitions(convention, tolerance=2.5)
        for key in ("dice", "iou", "hd", "hd95", "assd", "nsd", "msd_pred_to_ref", "empty_masks"):
            assert text[key]
        assert "2.5 mm" in text["nsd"]
    assert "MONAI" in definitions("monai")["convention"]
    assert "DeepMind" in definitions("surface-distance")["convention"]


def test_large_label_values_are_evaluated_like_small_ones():
    small = cube((12, 12, 12), (2, 2, 2), 5, label=3)
    shifted = cube((12, 12, 12), (3, 2, 2), 5, label=3)
    big = small.astype(np.uint32) * 30000  # 90000: beyond one find_objects slot per value
    big_shifted = shifted.astype(np.uint32) * 30000
    [expected] = compute_metrics(shifted, small)
    [m] = compute_metrics(big_shifted, big)
    assert m.label == 90000
    assert (m.dice, m.hd, m.hd95, m.assd) == (expected.dice, expected.hd, expected.hd95, expected.assd)
    assert compute_metrics(big_shifted, big, labels=[90000, 7])[1].empty_reference
