"""nnU-Net v2's ``postprocessing.json``: keep the largest connected component of labels or regions.

``nnUNetv2_determine_postprocessing`` writes ``postprocessing.pkl`` (pickled functions: never unpickled
here) and ``postprocessing.json`` next to it: ``postprocessing_fns`` (function names) and
``postprocessing_kwargs`` (one dict per function). The only function it chooses is
``remove_all_but_largest_component_from_segmentation`` with ``labels_or_regions``: a label, a region (a list
of labels, JSON has no tuples) or a list of them; the union of those labels is one mask whose components
(full connectivity, as scikit-image's default) other than the largest (every one of the largest size, as
acvl_utils keeps ties) are set to background. Steps run in file order.

The file is looked up in the result folder itself, then in ``crossval_results_folds_<folds>/`` for the
folds used (where nnU-Net writes it and ``nnUNetv2_export_model_to_zip`` ships it).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.core.errors import MedsegError

KEEP_LARGEST = "remove_all_but_largest_component_from_segmentation"
Step = tuple[int, ...]  # the labels whose union keeps only its largest component


def find_file(folder: Path, folds: Sequence[str]) -> Path | None:
    """``postprocessing.json`` of ``folder`` (or of its cross-validation results for ``folds``), or None."""
    candidates = [folder / "postprocessing.json",
                  folder / f"crossval_results_folds_{'_'.join(str(f) for f in folds)}" / "postprocessing.json"]
    return next((p for p in candidates if p.is_file()), None)


def _labels(value) -> list[int]:
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    if isinstance(value, (int, float)) and float(value).is_integer():
        return [int(value)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _labels(v)]
    raise ValueError(value)


def read_steps(path: Path) -> list[Step]:
    """The keep-largest steps of ``path``; refuse functions medseg does not reproduce, by name."""
    try:
        data = json.loads(path.read_text())
        fns, kwargs = data["postprocessing_fns"], data["postprocessing_kwargs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MedsegError(f"cannot read postprocessing_fns / postprocessing_kwargs ({exc})", path=path,
                          hint="rerun nnUNetv2_determine_postprocessing, or pass --no-postprocess") from exc
    if not isinstance(fns, list) or not isinstance(kwargs, list) or len(fns) != len(kwargs):
        raise MedsegError("postprocessing_fns and postprocessing_kwargs must be lists of one length", path=path)
    steps = []
    for fn, kw in zip(fns, kwargs):
        if fn != KEEP_LARGEST:
            raise MedsegError(f"postprocessing function {fn!r} is not supported", path=path,
                              hint=f"medseg applies {KEEP_LARGEST}; pass --no-postprocess to skip the file")
        try:
            labels = tuple(sorted(set(_labels(kw["labels_or_regions"]))))
        except (KeyError, TypeError, ValueError) as exc:
            raise MedsegError(f"{fn} needs labels_or_regions as labels or lists of labels, got {kw!r}",
                              path=path) from exc
        steps.append(labels)
    return steps


def keep_largest(seg: np.ndarray, labels: Sequence[int], background: int = 0) -> np.ndarray:
    """Set to ``background`` every voxel of ``labels``' union outside its largest component(s)."""
    from scipy.ndimage import generate_binary_structure, label

    mask = np.isin(seg, labels)
    if not mask.any():
        return seg
    components, _ = label(mask, structure=generate_binary_structure(seg.ndim, seg.ndim))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    keep = np.isin(components, np.flatnonzero(sizes == sizes.max()))
    seg[mask & ~keep] = background
    return seg


def apply_steps(seg: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Every step in order, in place."""
    for labels in steps:
        seg = keep_largest(seg, labels)
    return seg
