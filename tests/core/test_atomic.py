import os

import pytest

from medseg.core.atomic import atomic_path, atomic_write_text


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.nii.gz"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["out.nii.gz"]


def test_written_files_are_readable_by_others(tmp_path):
    target = tmp_path / "report.html"
    atomic_write_text(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~umask   # not mkstemp's private 0600
