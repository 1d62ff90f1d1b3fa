"""An interactive, self-contained HTML viewer: scan, label overlays and errors against a reference.

Built on NiiVue (WebGL2, BSD-2-Clause), bundled inside the package and the page, so the page works offline.

Example:
    >>> from medseg.viewer import write_viewer
    >>> write_viewer("ct.nii.gz", ["ct_seg.nii.gz"], reference="gt.nii.gz", output="ct_view.html")
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from medseg.viewer.volumes import (
    COMPARISON_NAMES,
    LABEL_BUDGET,
    SCAN_BUDGET,
    Volume,
    comparison,
    ct_like,
    read_volume,
    robust_range,
    shrink,
)

__all__ = ["build_case", "default_output", "label_maps_case", "overlay_entry", "scan_entry", "show", "view_html", "write_viewer"]


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb[:3])


def _legend(volume: Volume, names: Mapping[int, str], comparison_map: bool = False) -> list[list[Any]]:
    import numpy as np

    from medseg.viz.colors import (
        FALSE_NEGATIVE,
        FALSE_POSITIVE,
        WRONG_LABEL,
        label_color,
    )

    if comparison_map:
        colours = {1: "#8c8c8c", 2: FALSE_POSITIVE, 3: FALSE_NEGATIVE, 4: WRONG_LABEL}
        return [[v, n, colours[v].lower()] for v, n in COMPARISON_NAMES.items()]
    values = [int(v) for v in np.unique(volume.array) if v > 0]
    return [[v, names.get(v) or f"label_{v}", _hex(label_color(v))] for v in values]


def scan_entry(volume: Volume) -> dict[str, Any]:
    """The page's description of a scan (window presets: CT when it looks like Hounsfield units)."""
    return {"base64": volume.nifti_base64(), "name": _nifti_name(volume.name), "ct": ct_like(volume.array),
            "auto": list(robust_range(volume.array))}


def overlay_entry(volume: Volume, title: str, names: Mapping[int, str] | None = None, *,
                  comparison_map: bool = False) -> dict[str, Any]:
    """The page's description of a label overlay, with its legend (value, name, colour)."""
    merged = {**volume.names, **(names or {})}
    return {"title": title, "base64": volume.nifti_base64(), "name": _nifti_name(volume.name),
            "legend": _legend(volume, merged, comparison_map)}


def _nifti_name(name: str) -> str:
    stem = name.split(".")[0] or "volume"
    return f"{stem}.nii.gz"  # NiiVue picks its reader by extension


def build_case(scan: str | PathLike | None, labels: Sequence[str | PathLike] = (), *,
               reference: str | PathLike | None = None, names: Mapping[int, str] | None = None,
               title: str | None = None, scan_budget: int = SCAN_BUDGET,
               label_budget: int = LABEL_BUDGET) -> dict[str, Any]:
    """One case of the page: the scan (or none), an errors overlay per label map when a reference is given,
    then each label map and the reference. Volumes over the budget are shown at a coarser grid."""
    overlays: list[dict[str, Any]] = []
    ref = read_volume(reference, label=True) if reference is not None else None
    maps = [read_volume(p, label=True) for p in labels]
    if ref is not None:
        for volume in maps:
            errors = shrink(comparison(volume, ref), label_budget, label=True)
            overlays.append(overlay_entry(errors, f"errors: {volume.name} vs reference", comparison_map=True))
    for volume in maps:
        overlays.append(overlay_entry(shrink(volume, label_budget, label=True), volume.name, names))
    if ref is not None:
        overlays.append(overlay_entry(shrink(ref, label_budget, label=True), f"reference: {ref.name}", names))
    scan_part = None
    if scan is not None:
        scan_part = scan_entry(shrink(read_volume(scan, label=False), scan_budget, label=False))
    if scan_part is None and not overlays:
        raise ValueError("nothing to show: give a scan or a label map")
    return {"title": title or Path(scan if scan is not None else labels[0]).name, "scan": scan_part,
            "overlays": overlays}


def label_maps_case(pred: Any, ref: Any, affine: Any, *, names: Mapping[int, str] | None = None,
                    title: str = "case", budget: int = 8_000_000) -> dict[str, Any]:
    """A case for the evaluation report, which has no scan: the reference's foreground in grey as the
    background, then errors (prediction vs reference), the prediction and the reference as overlays."""
    import numpy as np

    affine = np.asarray(affine, dtype=np.float64)
    pred3, ref3 = (np.asarray(a)[..., None] if np.asarray(a).ndim == 2 else np.asarray(a) for a in (pred, ref))
    dtype = np.uint8 if max(int(pred3.max(initial=0)), int(ref3.max(initial=0))) <= 255 else np.uint16
    p = Volume(pred3.astype(dtype), affine, "prediction", dict(names or {}), label=True)
    r = Volume(ref3.astype(dtype), affine, "reference", dict(names or {}), label=True)
    background = shrink(Volume((ref3 > 0).astype(np.int16), affine, "reference_foreground"), budget, label=True)
    scan = {"base64": background.nifti_base64(), "name": "reference_foreground.nii.gz", "ct": False,
            "auto": [0.0, 3.0], "mask": True}
    overlays = [overlay_entry(shrink(comparison(p, r), budget, label=True), "errors: prediction vs reference",
                              comparison_map=True),
                overlay_entry(shrink(p, budget, label=True), "prediction", names),
                overlay_entry(shrink(r, budget, label=True), "reference", names)]
    return {"title": title, "scan": scan, "overlays": overlays}


def view_html(scan: str | PathLike | None, labels: Sequence[str | PathLike] = (), *,
              reference: str | PathLike | None = None, names: Mapping[int, str] | None = None,
              convention: str = "radiological", **budgets: int) -> str:
    """The viewer page for one scan as an HTML string (see :func:`write_viewer`)."""
    from medseg.viewer.page import render_page

    case = build_case(scan, labels, reference=reference, names=names, **budgets)
    return render_page([case], f"medseg view: {case['title']}", convention=convention)


def default_output(scan: str | PathLike) -> Path:
    """``CASE_view.html`` next to the scan."""
    from medseg.io.formats import case_name

    path = Path(scan)
    return path.with_name(f"{case_name(path)}_view.html")


def write_viewer(scan: str | PathLike, labels: Sequence[str | PathLike] = (), *,
                 reference: str | PathLike | None = None, output: str | PathLike | None = None,
                 names: Mapping[int, str] | None = None, convention: str = "radiological") -> Path:
    """Write a self-contained HTML viewer of ``scan`` with its label maps (errors coloured against
    ``reference`` when given); returns the page's path (default ``CASE_view.html`` next to the scan)."""
    from medseg.core.atomic import atomic_write_text

    path = Path(output) if output is not None else default_output(scan)
    atomic_write_text(path, view_html(scan, labels, reference=reference, names=names, convention=convention))
    return path


def show(scan: str | PathLike | None, labels: Sequence[str | PathLike] = (), *,
         reference: str | PathLike | None = None, names: Mapping[int, str] | None = None,
         height: int = 640, **budgets: int) -> Any:
    """The viewer in a notebook cell (an iframe holding the same self-contained page).

    Frontends that run no JavaScript (a static render, nbconvert to PDF) show nothing here: keep the
    matplotlib figures (:mod:`medseg.viz`) next to it as the static view.
    """
    from html import escape

    from IPython.display import HTML

    page = view_html(scan, labels, reference=reference, names=names, **budgets)
    return HTML(f'<div class="medseg-viewer"><iframe srcdoc="{escape(page, quote=True)}" '
                f'style="width:100%;height:{int(height)}px;border:0" title="medseg viewer"></iframe></div>')
