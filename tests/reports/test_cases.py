import pytest

from medseg.core.errors import MedsegError
from medseg.reports.cases import match_cases


def test_folders_pair_by_case_name_skipping_non_images(tmp_path):
    pred, ref = tmp_path / "p", tmp_path / "r"
    pred.mkdir()
    ref.mkdir()
    for name in ("a.nii.gz", "b.nii", "only_pred.nrrd", "notes.txt", ".hidden.nii.gz"):
        (pred / name).write_bytes(b"")
    for name in ("a.nii.gz", "b.nii.gz", "only_ref.nii.gz", "dataset.json"):
        (ref / name).write_bytes(b"")
    matched = match_cases(pred, ref)
    assert [c for c, _, _ in matched.pairs] == ["a", "b"]
    assert matched.pairs[1][1].name == "b.nii" and matched.pairs[1][2].name == "b.nii.gz"
    assert matched.only_in_prediction == ["only_pred"] and matched.only_in_reference == ["only_ref"]


def test_two_files_for_one_case_is_an_error(tmp_path):
    (tmp_path / "a.nii").write_bytes(b"")
    (tmp_path / "a.nii.gz").write_bytes(b"")
    with pytest.raises(MedsegError, match="two files for case 'a'"):
        match_cases(tmp_path, tmp_path)


def test_two_files_make_one_case_named_after_the_reference(tmp_path):
    (tmp_path / "seg.nii.gz").write_bytes(b"")
    (tmp_path / "case_7.nii.gz").write_bytes(b"")
    matched = match_cases(tmp_path / "seg.nii.gz", tmp_path / "case_7.nii.gz")
    assert [c for c, _, _ in matched.pairs] == ["case_7"]
