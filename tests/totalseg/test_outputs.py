"""`--labels`, `--stats`, sidecar, DICOM outputs and bad input on the TotalSegmentator path (stand-in parts)."""
from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.io import read_image
from medseg.reports.labels import embedded_label_names
from medseg.totalseg import pipeline
from tests.totalseg._parts import PART_LABELS, make_task, write_ct

runner = CliRunner()
TOTAL = [n for task in (291, 292, 293, 294, 295) for n in PART_LABELS[task]]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "tsh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "tsh"


def _alone(part, ct):
    image = read_image(ct)
    return pipeline.predict([part], 1.5, image.as_tensor().numpy()[0], image.affine.numpy(), source=ct).labels


def test_labels_subset_runs_only_their_parts_with_the_task_ids(home, tmp_path):
    parts = make_task(home, "total")  # no 6 mm folder: the whole scan runs
    ct = write_ct(tmp_path / "ct.nii.gz")
    organs, muscles = _alone(parts[0], ct), _alone(parts[3], ct)
    offset = sum(len(PART_LABELS[t]) for t in (291, 292, 293))
    merged = np.where(muscles > 0, muscles.astype(np.int32) + offset, organs)
    # one label of part 291 left visible after part 294 paints over it, one of 294 (random stand-ins)
    counts = np.bincount(merged.ravel(), minlength=offset + 1)
    organ = int(counts[1:len(PART_LABELS[291]) + 1].argmax()) + 1
    vessel = int(counts[offset + 1:].argmax()) + offset + 1
    names = [TOTAL[organ - 1], TOTAL[vessel - 1]]
    out = tmp_path / "seg.nii.gz"
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator", "-o", str(out),
                                          "--labels", f"{names[1]},{names[0]},{names[1]}", "--stats"])
    assert result.exit_code == 0, result.output
    assert embedded_label_names(out) == {organ: names[0], vessel: names[1]}
    labels = np.asarray(nib.load(out).dataobj)
    # parts 291 and 294 only (294 paints over 291), and nothing else is kept
    expected = np.where(np.isin(merged, [organ, vessel]), merged, 0)
    np.testing.assert_array_equal(labels, expected)
    assert (labels == organ).any() and (labels == vessel).any()
    rows = list(csv.DictReader((tmp_path / "seg_stats.csv").open()))
    assert [(int(r["label"]), r["name"]) for r in rows] == [(organ, names[0]), (vessel, names[1])]
    assert int(rows[0]["voxels"]) == int((labels == organ).sum())


def test_labels_subset_is_cropped_by_the_6mm_model(home, tmp_path):
    make_task(home, "total_fast")
    make_task(home, "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(40, 36, 30), spacing=(3.0, 3.0, 3.0))
    image = read_image(ct)
    data, affine = image.as_tensor().numpy()[0], image.affine.numpy()
    from medseg.totalseg.tasks import locate, parse_task

    coarse = pipeline.predict(locate(parse_task("totalsegmentator:total_fastest")), 6.0, data, affine,
                              source=ct).labels
    boxes = {int(v): pipeline.crop_box(coarse == v, affine) for v in np.unique(coarse) if v}
    size = {v: np.prod([b.stop - b.start for b in box]) for v, box in boxes.items()}
    wanted = [min(size, key=size.get)]  # the stand-in coarse label with the smallest box
    box = boxes[wanted[0]]
    name = PART_LABELS[298][wanted[0] - 1]
    assert any(b.stop - b.start < n for b, n in zip(box, data.shape)), "the crop must cut something here"
    out = tmp_path / "seg.nii.gz"
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fast", "-o",
                                          str(out), "--labels", name])
    assert result.exit_code == 0, result.output
    labels = np.asarray(nib.load(out).dataobj)
    outside = np.ones(labels.shape, bool)
    outside[box] = False
    assert not labels[outside].any() and set(np.unique(labels)) <= {0, *wanted}
    sidecar = json.loads((tmp_path / "seg.json").read_text())
    assert sidecar["settings"]["totalsegmentator"]["crop"] == "total_fastest"


def test_sidecar_pins_every_part_and_stats_cover_the_task(home, tmp_path):
    make_task(home, "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(24, 20, 16), spacing=(3.0, 3.0, 3.0))
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fastest",
                                          "--stats"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "ct_seg.json").read_text())
    assert sidecar["model"]["name"] == "totalsegmentator:total_fastest" and len(sidecar["labels"]) == 118
    (fold,) = sidecar["settings"]["fold_sha256"]
    assert fold.startswith("Dataset298_") and sidecar["settings"]["step"] == 0.8
    stats = json.loads((tmp_path / "ct_seg_stats.json").read_text())["structures"]
    labels = np.asarray(nib.load(tmp_path / "ct_seg.nii.gz").dataobj)
    assert len(stats) == 117 and sum(r["voxels"] for r in stats) == int((labels > 0).sum())
    assert sidecar["warnings"] == []


def test_non_ct_scan_is_warned(home, tmp_path):
    make_task(home, "total_fastest")
    rng = np.random.default_rng(0)
    mr = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(rng.integers(0, 800, (24, 20, 16)).astype(np.int16), np.diag([3.0, 3, 3, 1])), mr)
    result = runner.invoke(cli_main.app, ["predict", str(mr), "--model", "totalsegmentator:total_fastest"])
    assert result.exit_code == 0, result.output
    (warning,) = json.loads((tmp_path / "mr_seg.json").read_text())["warnings"]
    assert "do not look like CT" in warning
    assert pipeline.ct_warning(np.asarray(nib.load(write_ct(tmp_path / "ct.nii.gz")).dataobj) - 1024) is None


def test_4d_file_exit_2_nothing_written(home, tmp_path):
    make_task(home, "total_fastest")
    four = tmp_path / "dyn.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 12, 3), np.int16), np.eye(4)), four)
    result = runner.invoke(cli_main.app, ["predict", str(four), "--model", "totalsegmentator:total_fastest"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) <= 2 and "dyn.nii.gz" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["dyn.nii.gz", "tsh"]


def test_unknown_label_exit_2(home, tmp_path):
    make_task(home, "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fastest",
                                          "--labels", "liver,livr"])
    assert result.exit_code == 2 and "--labels livr" in " ".join(result.output.split())
    assert not (tmp_path / "ct_seg.nii.gz").exists()


def test_dicom_seg_output(home, tmp_path):
    pytest.importorskip("highdicom")
    from tests.io.dicom_objects_helpers import make_series

    make_task(home, "total_fastest")
    data = np.asarray(nib.load(write_ct(tmp_path / "ct.nii.gz", shape=(24, 20, 12))).dataobj)
    series = make_series(tmp_path / "series", data.astype(np.int16) - 1024, np.diag([3.0, 3.0, 3.0, 1.0]))
    out = tmp_path / "seg.dcm"
    result = runner.invoke(cli_main.app, ["predict", str(series), "--model", "totalsegmentator:total_fastest",
                                          "-o", str(out)])
    assert result.exit_code == 0, result.output
    from medseg.io.dicom_objects import read_dicom_object

    assert json.loads((tmp_path / "seg.json").read_text())["outputs"]["labels"]["format"] == "dicom-seg"
    labels, _, _ = read_dicom_object(out, source=series)
    assert labels.shape == data.shape and len(np.unique(labels)) > 2 and labels.max() <= 117
