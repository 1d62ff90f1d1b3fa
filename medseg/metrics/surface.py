"""Surface points of a prediction/reference mask pair and their distances to the other surface.

Two surface definitions, one per convention:

- ``monai``: the *edge voxels* of a mask, i.e. foreground voxels that binary erosion with the 6-connected
  (3D) / 4-connected (2D) cross removes, the image outside counting as background. Every edge voxel has
  weight 1. This is MONAI's ``get_mask_edges`` without sub-voxel areas.
- ``surface-distance``: DeepMind's *surfels*: the corners between voxels whose 2x2(x2) neighbourhood is
  neither all foreground nor all background. Each surfel carries the area (3D, mm^2) or length (2D, mm)
  of the marching-cubes surface element of its neighbourhood code.

Distances are exact Euclidean distances in mm between surface points (voxel indices scaled by the
spacing), computed on the crop only: a KD-tree over the target surface when surfaces are sparse, as they
are for organs, or a Euclidean distance transform of the crop when they are dense (speckle).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from medseg.core.resources import package_data

# beyond this fraction of surface points per crop voxel a distance transform beats the KD-tree
_DENSE_FRACTION = 0.25


@dataclass
class SurfaceDistances:
    """Distances (mm) from each surface point of one mask to the other mask's surface, in raster order.

    ``pred_areas``/``ref_areas`` are the surfel areas (mm^2, or mm in 2D) for the surface-distance
    convention and ``None`` for the monai convention (every edge voxel counts once).
    """

    pred_to_ref: np.ndarray
    ref_to_pred: np.ndarray
    pred_areas: np.ndarray | None = None
    ref_areas: np.ndarray | None = None


def edge_voxels(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with at least one face neighbour (or the image border) in the background."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def nearest_distances(source: np.ndarray, target: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance in mm from every ``source`` point (raster order) to the nearest ``target`` point.

    Both are boolean arrays of one shape. Exact Euclidean distance with anisotropic ``spacing``; the
    result is float64 and identical whichever of the two algorithms runs.
    """
    n_source, n_target = int(np.count_nonzero(source)), int(np.count_nonzero(target))
    if n_source == 0:
        return np.zeros(0, dtype=np.float64)
    if n_target == 0:
        return np.full(n_source, np.inf)
    scale = np.asarray(spacing, dtype=np.float64)
    if n_source + n_target > _DENSE_FRACTION * source.size:
        return ndimage.distance_transform_edt(~target, sampling=scale)[source]
    target_points = np.argwhere(target).astype(np.float64) * scale
    source_points = np.argwhere(source).astype(np.float64) * scale
    return cKDTree(target_points, leafsize=32).query(source_points, k=1)[0]


def edge_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Monai convention: edge voxels of both masks and their distances to the other mask's edges."""
    pred_edges, ref_edges = edge_voxels(pred), edge_voxels(ref)
    return SurfaceDistances(
        pred_to_ref=nearest_distances(pred_edges, ref_edges, spacing),
        ref_to_pred=nearest_distances(ref_edges, pred_edges, spacing),
    )


def neighbourhood_codes(mask: np.ndarray) -> np.ndarray:
    """Code of every 2x2(x2) voxel neighbourhood, on the lattice of voxel corners (shape + 1 per axis).

    Bit weights follow DeepMind's kernel (128, 64, 32, 16, 8, 4, 2, 1 in C order over the 2x2x2 block;
    8, 4, 2, 1 in 2D), so codes index the surface-area tables below.
    """
    padded = np.pad(mask.astype(np.uint8), 1)
    out_shape = tuple(s + 1 for s in mask.shape)
    codes = np.zeros(out_shape, dtype=np.uint8)
    offsets = list(np.ndindex(*(2,) * mask.ndim))
    for bit, offset in enumerate(offsets):
        weight = 1 << (len(offsets) - 1 - bit)
        window = tuple(slice(o, o + s) for o, s in zip(offset, out_shape))
        codes += padded[window] * np.uint8(weight)
    return codes


def surfel_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Surface-distance convention: surfels of both masks, their areas and distances to the other surface."""
    table = surfel_area_table(tuple(float(s) for s in spacing))
    full = len(table) - 1
    pred_codes, ref_codes = neighbourhood_codes(pred), neighbourhood_codes(ref)
    pred_border = (pred_codes != 0) & (pred_codes != full)
    ref_border = (ref_codes != 0) & (ref_codes != full)
    return SurfaceDistances(
        pred_to_ref=nearest_distances(pred_border, ref_border, spacing),
        ref_to_pred=nearest_distances(ref_border, pred_border, spacing),
        pred_areas=table[pred_codes[pred_border]],
        ref_areas=table[ref_codes[ref_border]],
    )


@lru_cache(maxsize=32)
def surfel_area_table(spacing: tuple[float, ...]) -> np.ndarray:
    """Area (3D, mm^2) or contour length (2D, mm) of the surface element of every neighbourhood code.

    3D: DeepMind's marching-cubes table of area-weighted triangle normals (the copy MONAI ships), each
    normal scaled by the face areas (s1*s2, s0*s2, s0*s1) and its norm summed, in float64.
    2D: an edge crossing the block along axis 0 or 1 has the length of that axis' spacing, a corner
    cut has half the pixel diagonal, a saddle two of them.
    """
    if len(spacing) == 2:
        first, second = spacing
        diag = 0.5 * float(np.hypot(first, second))
        table = np.zeros(16, dtype=np.float64)
        for code in (0b0001, 0b0010, 0b0100, 0b1000, 0b0111, 0b1011, 0b1101, 0b1110):
            table[code] = diag
        table[0b0110] = table[0b1001] = 2 * diag
        table[0b0011] = table[0b1100] = second
        table[0b0101] = table[0b1010] = first
        return table
    if len(spacing) != 3:
        raise ValueError(f"surfels need 2D or 3D masks, got spacing {spacing}")
    s0, s1, s2 = spacing
    normals = _normals_table()
    scaled = normals * np.array([s1 * s2, s0 * s2, s0 * s1])
    return np.linalg.norm(scaled, axis=-1).sum(axis=-1)


NORMALS_FILE = "surfel_normals_x8.npy"  # in medseg/data (package data)


@lru_cache(maxsize=1)
def _normals_table() -> np.ndarray:
    """(256, 4, 3) area-weighted triangle normals per neighbourhood code (multiples of 1/8, exact).

    DeepMind's marching-cubes table as MONAI ships it (``monai.metrics.utils.
    _get_neighbour_code_to_normals_table``), stored times 8 as int8 so the surface-distance convention needs
    no MONAI (``tests/metrics/test_surface_distance_convention.py`` checks it against MONAI's).
    """
    return np.load(package_data(NORMALS_FILE), allow_pickle=False).astype(np.float64) / 8.0
