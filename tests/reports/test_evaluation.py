"""evaluate(): folders matched by case name, arrays, geometry, bad input and the parallel path."""
import math

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.metrics import compute_metrics
from medseg.reports import evaluate
from tests.reports.conftest import AFFINE, make_case, save


def test_folders_are_matched_by_case_name_and_unmatched_are_listed(folders):
    pred_dir, ref_dir = folders
    result = evaluate(pred_dir, ref_dir, label_names=ref_dir / "dataset.json", tolerance=1.5)
    s = result.summary
    assert s["n_cases"] == 3
    assert s["cases_only_in_prediction"] == ["extra"] and s["cases_only_in_reference"] == ["lonely"]
    assert s["labels_only_in_prediction"] == {"3": ["c"]}
    assert [(r["case"], r["label"]) for r in result.cases] == [(c, v) for c in "abc" for v in (1, 2, 3)]
    assert {r["label_name"] for r in result.cases} == {"liver", "spleen", "label_3"}
    # numbers are those of compute_metrics with the spacing of the reference affine
    pred, ref = make_case(1)
    expected = compute_metrics(pred, ref, (0.8, 1.2, 2.0), [1, 2], tolerance=1.5)
    for m in expected:
        row = next(r for r in result.cases if r["case"] == "b" and r["label"] == m.label)
        assert row["dice"] == m.dice and row["hd95"] == m.hd95 and row["nsd"] == m.nsd
    missed = next(r for r in result.cases if r["case"] == "c" and r["label"] == 2)
    assert missed["empty_prediction"] and missed["hd"] is None and missed["distances_infinite"]
    spleen = s["labels"]["2"]
    assert spleen["n_only_prediction_empty"] == 1 and spleen["n_infinite_distance"] == 1
    assert spleen["metrics"]["hd95"]["n"] == 2 and spleen["metrics"]["hd95"]["n_infinite"] == 1
    assert spleen["metrics"]["dice"]["n"] == 3 and spleen["metrics"]["dice"]["min"] == 0.0
    assert "left out of the distance statistics" in s["aggregation"]
    assert "Tolerance: 1.5 mm" in result.definitions["nsd"]


def test_explicit_labels_by_name(folders):
    pred_dir, ref_dir = folders
    result = evaluate(pred_dir, ref_dir, labels="spleen", label_names=ref_dir / "dataset.json")
    assert {r["label"] for r in result.cases} == {2}
    with pytest.raises(MedsegError, match="unknown label 'kidney'"):
        evaluate(pred_dir, ref_dir, labels="kidney", label_names=ref_dir / "dataset.json")


def test_geometry_mismatch_names_both_files_unless_resampled(tmp_path):
    ref = np.zeros((10, 10, 8), np.uint8)
    ref[3:7, 3:7, 2:6] = 1
    ref_file = save(tmp_path / "ref.nii.gz", ref)
    # the same object on a grid twice as fine, centres placed so nearest neighbour maps back exactly
    fine = np.repeat(np.repeat(np.repeat(ref, 2, 0), 2, 1), 2, 2)
    fine_affine = AFFINE.copy()
    fine_affine[:3, :3] /= 2
    fine_affine[:3, 3] -= np.diag(AFFINE)[:3] / 4
    pred_file = save(tmp_path / "pred.nii.gz", fine, fine_affine)
    with pytest.raises(MedsegError) as info:
        evaluate(pred_file, ref_file)
    assert "pred.nii.gz" in str(info.value) and "ref.nii.gz" in str(info.value)
    assert "--resample-to-reference" in str(info.value)
    result = evaluate(pred_file, ref_file, resample_to_reference=True)
    assert result.cases[0]["dice"] == 1.0 and result.summary["resampled_cases"] == ["ref"]


def test_float_maps_need_a_threshold(tmp_path):
    ref = np.zeros((12, 12, 6), np.uint8)
    ref[3:9, 3:9, 1:5] = 1
    probabilities = ref * 0.8 + np.random.default_rng(0).uniform(0, 0.15, ref.shape)
    pred_file = save(tmp_path / "pred.nii.gz", probabilities.astype(np.float32))
    ref_file = save(tmp_path / "ref.nii.gz", ref)
    with pytest.raises(MedsegError, match="non-integer values") as info:
        evaluate(pred_file, ref_file)
    assert "pred.nii.gz" in str(info.value) and "--threshold" in str(info.value)
    assert evaluate(pred_file, ref_file, threshold=0.5).cases[0]["dice"] == 1.0
    # float files holding whole numbers are label maps (as some MSD labels are stored)
    save(tmp_path / "pred.nii.gz", ref.astype(np.float32))
    assert evaluate(pred_file, ref_file).cases[0]["dice"] == 1.0


def test_images_passed_as_labels_are_refused(tmp_path):
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    ct = np.random.default_rng(0).integers(-1000, 1000, (8, 8, 8)).astype(np.int16)
    ref_file = save(tmp_path / "ref.nii.gz", ref)
    with pytest.raises(MedsegError, match="negative values"):
        evaluate(save(tmp_path / "ct.nii.gz", ct), ref_file)


def test_missing_paths_and_no_common_cases(tmp_path, folders):
    pred_dir, ref_dir = folders
    with pytest.raises(MedsegError, match="prediction path not found"):
        evaluate(tmp_path / "nope", ref_dir)
    other = tmp_path / "other"
    other.mkdir()
    save(other / "zzz.nii.gz", make_case(0)[0])
    with pytest.raises(MedsegError, match="no case name is common"):
        evaluate(other, ref_dir)
    with pytest.raises(MedsegError, match="single file"):
        evaluate(pred_dir, ref_dir / "a.nii.gz")


def test_arrays_with_spacing_and_empty_labels():
    pred, ref = make_case(2)
    result = evaluate(pred, ref, spacing=(0.8, 1.2, 2.0), labels=[1, 2, 5], tolerance=2.0)
    rows = {r["label"]: r for r in result.cases}
    [expected] = compute_metrics(pred, ref, (0.8, 1.2, 2.0), [1], tolerance=2.0)
    assert rows[1]["hd"] == expected.hd and rows[1]["assd"] == expected.assd
    # label 5 is in neither map: reported as absent, not as a perfect Dice 1 ("both empty")
    assert 5 not in rows and "5" not in result.summary["labels"]
    assert result.summary["requested_labels_not_found"] == {"5": "label_5"}
    assert not any(isinstance(v, float) and math.isnan(v) for r in result.cases for v in r.values())


@pytest.mark.slow  # worker start-up imports torch once (seconds; far more on a loaded machine)
def test_parallel_workers_give_the_same_rows(folders):
    pred_dir, ref_dir = folders
    seen = []
    serial = evaluate(pred_dir, ref_dir, workers=1)
    parallel = evaluate(pred_dir, ref_dir, workers=2, progress=lambda done, total, case: seen.append((done, total)))
    assert parallel.cases == serial.cases
    assert sorted(seen) == [(1, 3), (2, 3), (3, 3)]


def test_metatensors_bring_their_spacing():
    from medseg.io import read_image
    from tests.conftest import SAMPLE_LABEL

    ref = read_image(SAMPLE_LABEL)
    pred = ref.clone()
    pred[0, :, :, 17:] = 0
    result = evaluate(pred, ref, labels=[1, 2])
    [expected] = compute_metrics(pred.numpy()[0], ref.numpy()[0], (1.0, 1.0, 1.0), [2])
    assert result.cases[1]["hd95"] == expected.hd95 and result.cases[1]["dice"] < 1


def test_label_names_come_from_the_prediction_files_when_none_are_given(tmp_path):
    from medseg.io import write_image

    pred, ref = make_case(1)
    write_image(pred[None], tmp_path / "p.nii.gz", affine=AFFINE,
                extensions={"json": {"labels": {"0": "background", "1": "liver", "2": "spleen"}}})
    save(tmp_path / "r.nii.gz", ref)
    result = evaluate(tmp_path / "p.nii.gz", tmp_path / "r.nii.gz", labels="spleen")
    assert [(r["label"], r["label_name"]) for r in result.cases] == [(2, "spleen")]
    named = evaluate(tmp_path / "p.nii.gz", tmp_path / "r.nii.gz", label_names={1: "a", 2: "b"})
    assert {r["label_name"] for r in named.cases} == {"a", "b"}  # given names win


def test_a_requested_label_in_no_file_is_absent_with_a_warning_not_dice_one(tmp_path, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)  # the CLI tests turn it off
    pred, ref = make_case(1)
    save(tmp_path / "p.nii.gz", pred)
    save(tmp_path / "r.nii.gz", ref)
    result = evaluate(tmp_path / "p.nii.gz", tmp_path / "r.nii.gz", labels="1,7")
    assert [r["label"] for r in result.cases] == [1]
    assert result.summary["requested_labels_not_found"] == {"7": "label_7"}
    assert "requested label(s) 7 (label_7) occur in no prediction and no reference" in caplog.text
