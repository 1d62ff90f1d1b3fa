import os

import pytest

from medseg.core.errors import MedsegError
from medseg.core.paths import find_collision, looks_like_file, refuse_writing_inputs


def test_outputs_beside_inputs_are_fine_and_the_same_file_is_not(tmp_path):
    scan = tmp_path / "a.nii.gz"
    scan.write_bytes(b"scan")
    assert find_collision([tmp_path / "a_seg.nii.gz", tmp_path / "a_seg.json"], [scan]) is None
    with pytest.raises(MedsegError, match="never writes onto its inputs"):
        refuse_writing_inputs([tmp_path / "." / "a.nii.gz"], [scan])


def test_folders_read_or_replaced_whole_protect_what_they_hold(tmp_path):
    series = tmp_path / "dicom"
    series.mkdir()
    (series / "0001.dcm").write_bytes(b"slice")
    assert find_collision([series / "seg.nii.gz"], [series]) == (series / "seg.nii.gz", series)
    scan = tmp_path / "cases" / "a.nii.gz"
    scan.parent.mkdir()
    scan.write_bytes(b"scan")
    assert find_collision([tmp_path / "cases"], [scan]) == (tmp_path / "cases", scan)   # e.g. run.old-TIME moves


def test_hard_links_and_symlinked_folders_are_seen_through(tmp_path):
    scan = tmp_path / "in" / "a.nii.gz"
    scan.parent.mkdir()
    scan.write_bytes(b"scan")
    os.link(scan, tmp_path / "twin.nii.gz")
    os.symlink(tmp_path / "in", tmp_path / "alias")
    assert find_collision([tmp_path / "twin.nii.gz"], [scan]) is not None
    assert find_collision([tmp_path / "alias" / "a.nii.gz"], [scan]) is not None


@pytest.mark.parametrize(("text", "is_file"), [("stunet_t.hippocampus", False), ("best.pt", True),
                                                ("runs/x/last", True), ("base_ep4k.model", True)])
def test_from_arguments_that_name_files(text, is_file):
    assert looks_like_file(text) is is_file
