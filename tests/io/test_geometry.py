"""Geometry helpers: LPS <-> RAS, 2D representability, singular and sheared affines."""
from __future__ import annotations

import numpy as np
import pytest

from medseg.io.geometry import (
    affine_from_itk,
    as_affine4,
    complete_slice_axis,
    fits_itk_2d,
    has_shear,
    is_singular,
    itk_from_affine,
    orientation_code,
    spacing_from_affine,
)
from tests.conftest import random_oblique_affine


def test_itk_and_ras_conversions_invert_each_other(rng):
    for _ in range(5):
        affine = random_oblique_affine(rng)
        np.testing.assert_allclose(affine_from_itk(*itk_from_affine(affine)), affine, atol=1e-12)


def test_itk_identity_is_lps():
    affine = affine_from_itk((10.0, 20.0, 30.0), (1.0, 2.0, 3.0), np.eye(3).ravel())
    np.testing.assert_allclose(affine, [[-1, 0, 0, -10], [0, -2, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]])
    assert orientation_code(affine) == "LPS"
    assert orientation_code(np.eye(4)) == "RAS"


def test_2d_affines_fit_itk_2d_only_without_a_3d_tilt(rng):
    flat = np.eye(4)
    flat[:2, :2] = [[0.0, -0.5], [0.7, 0.0]]
    flat[:2, 3] = (3.0, 4.0)
    assert fits_itk_2d(flat)
    assert not fits_itk_2d(random_oblique_affine(rng))
    lifted = flat.copy()
    lifted[2, 3] = 5.0  # the slice sits at z = 5: needs a 3D image
    assert not fits_itk_2d(lifted)


def test_singular_sheared_and_completed_affines():
    assert is_singular(np.diag([1.0, 1.0, 0.0, 1.0]))
    assert not is_singular(np.diag([1.0, 1.0, 0.0, 1.0]), ndim=2)  # the unused slice axis does not matter
    assert is_singular(np.full((4, 4), np.nan))
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    assert has_shear(sheared) and not has_shear(np.diag([0.5, 2.0, 3.0, 1.0]))
    completed = complete_slice_axis(np.diag([2.0, 3.0, 0.0, 1.0]))
    np.testing.assert_allclose(completed[:3, 2], [0, 0, 1])
    assert spacing_from_affine(np.diag([2.0, 3.0, 4.0, 1.0]), 2) == (2.0, 3.0)


def test_monai_style_3x3_affine_is_embedded():
    np.testing.assert_allclose(as_affine4(np.array([[2.0, 0, 5], [0, 3, 6], [0, 0, 1]])),
                               [[2, 0, 0, 5], [0, 3, 0, 6], [0, 0, 1, 0], [0, 0, 0, 1]])
    with pytest.raises(ValueError):
        as_affine4(np.eye(5))
