"""Format detection by extension, for reading and for writing."""
from __future__ import annotations

import pytest

from medseg.core.errors import MedsegError
from medseg.io import case_name, detect_format, split_ext


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.nii", "nifti"), ("a.NII.GZ", "nifti"), ("a.nrrd", "itk"), ("a.nhdr", "itk"), ("a.mha", "itk"),
    ("a.mhd", "itk"), ("a.dcm", "itk"), ("a.png", "image2d"), ("a.tiff", "image2d"), ("a.jpg", "image2d"),
])
def test_read_formats_follow_the_extension(name, fmt):
    assert detect_format(name) == fmt


def test_write_formats_and_dicom_folders(tmp_path):
    assert detect_format("out.nii.gz", for_writing=True) == "nifti"
    assert detect_format("out_dicom/", for_writing=True) == "dicom"
    assert detect_format("out_dicom", for_writing=True) == "dicom"
    assert detect_format(tmp_path, for_writing=True) == "dicom"
    assert detect_format(tmp_path) == "dicom"
    for name in ("out.jpg", "out.dcm", "out.bmp", "out.v2"):
        with pytest.raises(MedsegError):
            detect_format(name, for_writing=True)


def test_case_names_keep_double_extensions_together():
    assert split_ext("ct_001.nii.gz") == ("ct_001", ".nii.gz")
    assert case_name("/data/ct_001.nii.gz") == "ct_001"
    assert case_name("scan.v1.nrrd") == "scan.v1"
