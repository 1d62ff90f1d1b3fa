"""`medseg predict --model totalsegmentator[:TASK]` on stand-in part folders under a temporary TOTALSEG_HOME_DIR."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.core.errors import MedsegError
from medseg.io import read_image
from medseg.reports.labels import embedded_label_names
from medseg.totalseg import pipeline
from tests.totalseg._parts import PART_LABELS, make_task, write_ct

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "tsh"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no real ~/.totalsegmentator
    return tmp_path / "tsh"


def _run_alone(part, ct, spacing):
    image = read_image(ct)
    return pipeline.predict([part], spacing, image.as_tensor().numpy()[0], image.affine.numpy(), source=ct).labels


def test_total_merges_parts_in_order_with_names_on_the_input_grid(home, tmp_path):
    parts = make_task(home, "total")
    ct = write_ct(tmp_path / "ct.nii.gz", spacing=(1.2, 1.5, 2.0))
    out = tmp_path / "seg.nii.gz"
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total", "-o", str(out)])
    assert result.exit_code == 0, result.output
    seg, src = nib.load(out), nib.load(ct)
    assert seg.shape == src.shape and np.allclose(seg.affine, src.affine, atol=1e-4)
    expected_names = [n for task in (291, 292, 293, 294, 295) for n in PART_LABELS[task]]
    names = embedded_label_names(out)
    assert [names[i] for i in range(1, len(expected_names) + 1)] == expected_names and len(names) == 117

    # the merged map equals the parts run alone, shifted to their final IDs, later parts painted over earlier
    labels = np.asarray(seg.dataobj)
    expected = np.zeros(src.shape, dtype=np.int32)
    offset, overlap = 0, 0
    for part, task in zip(parts, (291, 292, 293, 294, 295)):
        alone = _run_alone(part, ct, 1.5).astype(np.int32)
        overlap += int(((expected > 0) & (alone > 0)).sum())
        expected = np.where(alone > 0, alone + offset, expected)
        offset += len(PART_LABELS[task])
    assert overlap > 0, "the stand-in parts must both claim some voxels for this test to mean anything"
    np.testing.assert_array_equal(labels, expected)
    assert len(np.unique(labels)) > 5


def test_total_fast_single_part_at_3mm(home, tmp_path):
    (part,) = make_task(home, "total_fast")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(30, 24, 20), spacing=(1.5, 1.5, 1.5))
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fast"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "ct_seg.nii.gz"
    assert "1 done" in result.output
    seg, src = nib.load(out), nib.load(ct)
    assert seg.shape == src.shape and np.allclose(seg.affine, src.affine, atol=1e-4)
    assert embedded_label_names(out) == dict(enumerate(PART_LABELS[297], start=1))
    labels = np.asarray(seg.dataobj)
    assert set(np.unique(labels)) <= set(range(len(PART_LABELS[297]) + 1)) and len(np.unique(labels)) > 2
    # 3 mm model: labels come back nearest-neighbour from a grid half the size, so 2x2x2 blocks agree
    assert (labels[:-1:2] == labels[1::2]).mean() > 0.95


def test_weights_dir_is_searched_first(tmp_path, monkeypatch):
    monkeypatch.delenv("TOTALSEG_HOME_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    make_task(tmp_path / "w", "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(24, 24, 24), spacing=(3.0, 3.0, 3.0))
    out = tmp_path / "masks"
    out.mkdir()
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fastest",
                                          "--weights-dir", str(tmp_path / "w" / "nnunet" / "results"),
                                          "-o", str(out), "--output-type", "per-class"])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "masks" / "ct").iterdir())
    assert files == sorted(f"{n}.nii.gz" for n in PART_LABELS[298])


def test_missing_parts_exit_2_with_the_list(home, tmp_path):
    make_task(home, "total", skip=(294, 295))
    ct = write_ct(tmp_path / "ct.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator", "-o",
                                          str(tmp_path / "seg.nii.gz")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "missing: Dataset294_TotalSegmentator_part4_muscles_1559subj, " \
           "Dataset295_TotalSegmentator_part5_ribs_1559subj" in text
    assert "Dataset291_TotalSegmentator_part1_organs_1559subj/nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres" in text
    assert "Traceback" not in result.output and not (tmp_path / "seg.nii.gz").exists()


def test_unknown_task_exit_2(home, tmp_path):
    ct = write_ct(tmp_path / "ct.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:lung_vessels"])
    assert result.exit_code == 2 and "total_fast" in result.output


def test_orientation_is_undone(home, tmp_path):
    (part,) = make_task(home, "total_fastest")
    ras = write_ct(tmp_path / "ras.nii.gz", shape=(20, 16, 12), spacing=(6.0, 6.0, 6.0))
    img = nib.load(ras)
    ras_affine = np.diag([6.0, 6.0, 6.0, 1.0])
    ras_affine[:3, 3] = [-50.0, -40.0, -30.0]
    data = np.asarray(img.dataobj).astype(np.float32)
    flipped_affine = ras_affine @ np.array([[-1, 0, 0, 19], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    a = pipeline.predict([part], 6.0, data, ras_affine, source=ras).labels
    b = pipeline.predict([part], 6.0, data[::-1].copy(), flipped_affine, source=ras).labels
    assert len(np.unique(a)) > 1
    np.testing.assert_array_equal(b, a[::-1])  # same world positions, same labels


def test_2d_input_exit_2(home, tmp_path):
    make_task(home, "total_fastest")
    flat = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16), np.int16), np.eye(4)), flat)
    result = runner.invoke(cli_main.app, ["predict", str(flat), "--model", "totalsegmentator:total_fastest"])
    assert result.exit_code == 2 and "3D CT" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "slice_seg.nii.gz").exists()


def test_options_not_honoured_are_refused(home, tmp_path):
    make_task(home, "total_fastest")
    ct = write_ct(tmp_path / "ct.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator:total_fastest",
                                          "--probabilities"])
    assert result.exit_code == 2 and "--probabilities not supported" in result.output
    assert not (tmp_path / "ct_seg.nii.gz").exists()


def test_a_part_with_another_label_set_is_refused_naming_the_labels(home, tmp_path):
    parts = make_task(home, "total")
    dataset = parts[1] / "dataset.json"
    data = json.loads(dataset.read_text())
    data["labels"]["liver"] = data["labels"].pop("vertebrae_L5")  # 291's liver copied into part 292
    dataset.write_text(json.dumps(data))
    ct = write_ct(tmp_path / "ct.nii.gz")
    result = runner.invoke(cli_main.app, ["predict", str(ct), "--model", "totalsegmentator"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Dataset292" in text and "dataset.json" in text
    assert "missing vertebrae_L5; not expected liver" in text and "Traceback" not in result.output
    assert not (tmp_path / "ct_seg.nii.gz").exists() and not (tmp_path / "ct_seg.json").exists()
    with pytest.raises(MedsegError, match="label 'liver' is in two parts"):  # folders without a known set
        pipeline.read_parts(parts)
