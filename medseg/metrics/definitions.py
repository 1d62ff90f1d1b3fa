"""The exact definition of every metric, per convention, in words: written into every JSON and report."""
from __future__ import annotations

CONVENTIONS = ("monai", "surface-distance")

METRICS = ("dice", "iou", "precision", "sensitivity", "hd", "hd95", "assd",
           "msd_pred_to_ref", "msd_ref_to_pred", "nsd", "volume_ref", "volume_pred", "volume_difference")
DISTANCE_METRICS = ("hd", "hd95", "assd", "msd_pred_to_ref", "msd_ref_to_pred")

EMPTY_RULE = (
    "Both prediction and reference empty for a label: dice, iou, precision, sensitivity and nsd are 1 and "
    "every distance is 0. Exactly one of them empty: dice, iou, precision, sensitivity and nsd are 0 and "
    "every distance is infinite (null in JSON with distances_infinite true, 'inf' in CSV). Summary "
    "statistics of distances leave infinite values out and count them (n_infinite); overlap scores and "
    "nsd include every case."
)

_COMMON = {
    "dice": "2|P∩R| / (|P| + |R|), P and R the prediction and reference voxels of the label.",
    "iou": "|P∩R| / |P∪R| (Jaccard index).",
    "precision": "|P∩R| / |P| (positive predictive value).",
    "sensitivity": "|P∩R| / |R| (recall, true positive rate).",
    "volume_ref": "voxel count of R times the voxel volume, in mL (mm² for 2D images).",
    "volume_pred": "voxel count of P times the voxel volume, in mL (mm² for 2D images).",
    "volume_difference": "volume_pred - volume_ref (positive: over-segmentation).",
    "units": "distances in mm, using the voxel spacing of the reference image (column norms of its affine).",
    "empty_masks": EMPTY_RULE,
}

_MONAI = {
    "convention": "monai: reproduces MONAI 1.6.1 compute_hausdorff_distance (percentile None and 95), "
    "compute_average_surface_distance(symmetric=True) and compute_surface_dice(use_subvoxels=False) "
    "with spacing, to float32 precision.",
    "surface": "edge voxels: foreground voxels removed by one binary erosion with the face-connected cross "
    "(6 neighbours in 3D, 4 in 2D), outside the image counting as background. A distance is the Euclidean "
    "distance in mm between voxel centres, from an edge voxel to the nearest edge voxel of the other mask.",
    "hd": "maximum over both directions of the largest edge distance.",
    "hd95": "maximum over both directions of the 95th percentile of the edge distances, linear "
    "interpolation between order statistics (torch.quantile).",
    "assd": "mean of the edge distances of both directions pooled together.",
    "msd_pred_to_ref": "mean distance from the prediction's edge voxels to the reference edge.",
    "msd_ref_to_pred": "mean distance from the reference's edge voxels to the prediction edge.",
    "nsd": "normalised surface Dice: edge voxels of both masks lying within the tolerance of the other "
    "mask's edge, divided by the number of edge voxels of both masks.",
}

_SURFACE_DISTANCE = {
    "convention": "surface-distance: reproduces DeepMind surface-distance (compute_surface_distances, "
    "compute_robust_hausdorff, compute_average_surface_distance, compute_surface_dice_at_tolerance), "
    "float64.",
    "surface": "surfels: voxel corners whose 2x2x2 neighbourhood (2x2 in 2D) is partly foreground; each "
    "weighted by the area in mm² of its marching-cubes surface element (the contour length in mm in 2D). "
    "A distance is the Euclidean distance in mm from a surfel to the nearest surfel of the other mask.",
    "hd": "largest surfel distance over both directions (the robust Hausdorff at 100%).",
    "hd95": "maximum over both directions of the area-weighted 95th percentile: with surfels sorted by "
    "distance, the first distance at which the cumulative area fraction reaches 0.95.",
    "assd": "area-weighted mean of the surfel distances of both surfaces: sum(area x distance) / sum(area) "
    "over the surfels of both masks.",
    "msd_pred_to_ref": "area-weighted mean distance from the prediction's surfels to the reference surface.",
    "msd_ref_to_pred": "area-weighted mean distance from the reference's surfels to the prediction surface.",
    "nsd": "surface Dice at tolerance: surfel area of both masks within the tolerance of the other "
    "surface, divided by the total surfel area of both.",
}


def definitions(convention: str = "monai", tolerance: float = 1.0) -> dict[str, str]:
    """Plain-text definitions of every reported number for ``convention``, tolerance included."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    specific = dict(_MONAI if convention == "monai" else _SURFACE_DISTANCE)
    specific["nsd"] += f" Tolerance: {tolerance:g} mm."
    return {**_COMMON, **specific}
