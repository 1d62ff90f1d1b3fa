"""Viewer volumes: shrinking keeps geometry, error colouring, embedded label names, window presets."""
from __future__ import annotations

import base64
import gzip
import json
import re

import nibabel as nib
import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.viewer import build_case
from medseg.viewer.volumes import (
    AGREE,
    EXTRA,
    MISSED,
    SCAN_BUDGET,
    WRONG,
    Volume,
    comparison,
    ct_like,
    embedded_label_names,
    read_volume,
    shrink,
    shrink_steps,
)


def _decode(entry_base64: str) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(entry_base64)))


def test_shrink_halves_the_finest_axis_and_keeps_block_centres_in_place():
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    affine[:3, 3] = (-10, 5, 7)
    array = np.arange(8 * 8 * 4, dtype=np.int16).reshape(8, 8, 4)
    small = shrink(Volume(array, affine, "s"), 8 * 8 * 4 // 4, label=False)
    assert small.array.shape == (4, 4, 4)                 # the 0.5 mm axes were halved, the 2 mm one kept
    assert small.step == (2, 2, 1)
    assert small.array[0, 0, 0] == np.round(array[:2, :2, 0].mean())
    # voxel (0,0,0) of the small grid sits at the centre of the 2x2 block it averages
    centre = affine @ np.array([0.5, 0.5, 0, 1])
    np.testing.assert_allclose(small.affine @ np.array([0, 0, 0, 1]), centre)
    np.testing.assert_allclose(np.linalg.norm(small.affine[:3, :3], axis=0), [1.0, 1.0, 2.0])


def test_shrinking_a_label_map_never_invents_values():
    labels = np.zeros((16, 16, 16), np.uint8)
    labels[::2, ::2] = 3
    labels[1::2, 1::2] = 7
    small = shrink(Volume(labels, np.eye(4), "l", label=True), 16 ** 3 // 8, label=True)
    assert set(np.unique(small.array)) <= {0, 3, 7}


def test_a_512x512x300_ct_is_shown_at_half_resolution_and_a_small_one_untouched():
    assert shrink_steps((512, 512, 300), (0.7, 0.7, 1.0), SCAN_BUDGET) == [2, 2, 2]
    assert shrink_steps((512, 512, 200), (0.7, 0.7, 3.0), SCAN_BUDGET) == [2, 2, 1]
    assert shrink_steps((512, 512, 40), (0.7, 0.7, 5.0), SCAN_BUDGET) == [1, 1, 1]


def test_comparison_colours_false_positives_negatives_and_wrong_labels():
    pred = np.array([[[1, 1, 0, 2, 0]]], np.uint8)
    ref = np.array([[[1, 0, 1, 1, 0]]], np.uint8)
    out = comparison(Volume(pred, np.eye(4), "p"), Volume(ref, np.eye(4), "r")).array
    assert out.ravel().tolist() == [AGREE, EXTRA, MISSED, WRONG, 0]


def test_comparison_refuses_another_grid():
    a = Volume(np.zeros((4, 4, 4), np.uint8), np.eye(4), "p.nii.gz")
    b = Volume(np.zeros((4, 4, 4), np.uint8), np.diag([2.0, 1, 1, 1]), "r.nii.gz")
    with pytest.raises(MedsegError, match="different voxel grids"):
        comparison(a, b)


def test_label_names_come_from_the_files_json_or_caret_extension(case, tmp_path):
    assert embedded_label_names(case["labels"]) == {1: "spleen"}
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    xml = ('<CaretExtension><LabelTable><Label Key="0" Red="0"><![CDATA[background]]></Label>'
           '<Label Key="2" Red="1"><![CDATA[kidney_right]]></Label></LabelTable></CaretExtension>')
    image.header.extensions.append(nib.nifti1.Nifti1Extension(0, xml.encode()))
    nib.save(image, tmp_path / "ts.nii.gz")
    assert embedded_label_names(tmp_path / "ts.nii.gz") == {2: "kidney_right"}
    assert embedded_label_names(case["reference"]) == {}


def test_ct_is_recognised_by_its_air():
    assert ct_like(np.array([-1000] * 10 + [40] * 90, np.int16))
    assert not ct_like(np.linspace(0, 800, 100))


def test_case_carries_scan_errors_labels_and_reference_with_names_and_geometry(case):
    built = build_case(case["scan"], [case["labels"]], reference=case["reference"])
    assert built["scan"]["ct"] is True
    titles = [o["title"] for o in built["overlays"]]
    assert titles == ["errors: ct_seg.nii.gz vs reference", "ct_seg.nii.gz", "reference: gt.nii.gz"]
    assert built["overlays"][1]["legend"] == [[1, "spleen", "#e69f00"]]
    assert [row[1] for row in built["overlays"][0]["legend"]][1:3] == ["prediction only (false positive)",
                                                                       "reference only (false negative)"]
    errors = _decode(built["overlays"][0]["base64"])
    values, counts = np.unique(np.asarray(errors.dataobj), return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist()))[EXTRA] == 12 * 16 * 3
    assert errors.header.get_intent()[0] == "label"     # NiiVue looks label colours up without interpolation
    scan = _decode(built["scan"]["base64"])
    np.testing.assert_allclose(scan.affine, np.diag([1.0, 1.0, 2.0, 1.0]))
    assert scan.get_data_dtype() == np.int16


def test_a_scan_given_as_labels_is_refused(case):
    with pytest.raises(MedsegError, match="not a label map"):
        read_volume(_float_scan(case), label=True)


def _float_scan(case):
    from medseg.io import write_image

    path = case["scan"].with_name("mr.nii.gz")
    write_image(np.random.default_rng(0).random((1, 8, 8, 8)).astype(np.float32), path, affine=np.eye(4))
    return path


def test_page_embeds_niivue_and_its_data_and_no_network_url(case):
    from medseg.viewer import view_html

    page = view_html(case["scan"], [case["labels"]])
    data = json.loads(re.search(r'<script type="application/json" id="ms-data">(.*?)</script>', page, re.DOTALL).group(1))
    assert data["convention"] == "radiological" and len(data["cases"]) == 1
    assert "niivue" in page and len(page) > 2_000_000
    assert not re.search(r'(src|href)="https?://', page)


def test_notebook_view_is_the_same_page_in_an_iframe(case):
    import html

    from medseg.viewer import show

    shown = show(case["scan"], [case["labels"]], height=400)
    body = shown.data
    assert body.startswith('<div class="medseg-viewer"><iframe srcdoc=') and "height:400px" in body
    page = html.unescape(re.search(r'srcdoc="(.*?)"', body, re.DOTALL).group(1))
    assert '<canvas id="ms-canvas">' in page and '"spleen"' in page
