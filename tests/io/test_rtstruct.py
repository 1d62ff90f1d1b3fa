"""RTSTRUCT: predict from a DICOM series -> contours -> rasterised back (Dice >= 0.95), holes, evaluate, errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.io import read_image
from tests.conftest import random_oblique_affine
from tests.inference._models import smooth_volume
from tests.io.dicom_objects_helpers import (
    dciodvfy_errors,
    dice,
    make_series,
    model_args,
    one_line_error,
)

pydicom = pytest.importorskip("pydicom")
runner = CliRunner()


def test_oblique_series_to_rtstruct_rasterises_back_to_the_prediction(tmp_path, rng):
    series = make_series(tmp_path / "series", smooth_volume((22, 18, 8), rng), random_oblique_affine(rng))
    args = model_args(tmp_path)
    for output, extra in (("rt.dcm", ["--output-format", "rtstruct"]), ("seg.nii.gz", [])):
        result = runner.invoke(cli_main.app, ["predict", str(series), "-o", str(tmp_path / output), *extra, *args])
        assert result.exit_code == 0, result.output
    nifti = read_image(tmp_path / "seg.nii.gz")[0].numpy()
    back = read_image(tmp_path / "rt.dcm")  # the series is found beside the RTSTRUCT
    np.testing.assert_allclose(back.affine.numpy(), read_image(tmp_path / "seg.nii.gz").affine.numpy(), atol=1e-5)
    for value in (1, 2):
        assert (nifti == value).sum() > 50
        assert dice(back[0].numpy() == value, nifti == value) >= 0.95

    ds = pydicom.dcmread(tmp_path / "rt.dcm")
    assert ds.Modality == "RTSTRUCT" and [r.ROIName for r in ds.StructureSetROISequence] == ["low", "high"]
    source = pydicom.dcmread(next(series.iterdir()))
    referenced = ds.ReferencedFrameOfReferenceSequence[0]
    assert referenced.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert referenced.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID == \
        source.SeriesInstanceUID
    assert all(len(c.ROIDisplayColor) == 3 for c in ds.ROIContourSequence)
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
    normal = np.cross(*np.asarray(source.ImageOrientationPatient, dtype=float).reshape(2, 3))
    assert np.ptp(points @ normal) < 1e-3  # planar, in patient coordinates
    assert dciodvfy_errors(tmp_path / "rt.dcm") == []

    scored = runner.invoke(cli_main.app, ["evaluate", str(tmp_path / "rt.dcm"), str(tmp_path / "seg.nii.gz"),
                                          "--json", "-"])
    assert scored.exit_code == 0, scored.output
    assert all(row["dice"] >= 0.95 for row in json.loads(scored.output)["cases"])


def test_holes_and_touching_structures_survive(tmp_path, rng):
    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

    series = make_series(tmp_path / "series", rng.normal(size=(20, 20, 3)).astype(np.float32),
                         np.diag([0.7, 0.7, 2.0, 1.0]))
    labels = np.zeros((20, 20, 3), np.uint8)
    labels[3:17, 3:17, :] = 1
    labels[7:13, 7:13, :] = 0  # a hole in the ring
    labels[9:11, 9:11, 1] = 2  # an island inside the hole
    labels[17:19, 3:17, 2] = 3  # touching the ring
    write_dicom_labels("rtstruct", labels, read_image(series).affine.numpy(), series, tmp_path / "rt.dcm",
                       ["background", "ring", "island", "edge"])
    back, _, extra = read_dicom_object(tmp_path / "rt.dcm")
    np.testing.assert_array_equal(back, labels)
    assert extra["label_names"] == {1: "ring", 2: "island", 3: "edge"}
    assert dciodvfy_errors(tmp_path / "rt.dcm") == []


@pytest.mark.shared
def test_hippocampus_structures(tmp_path, shared_data):
    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

    root = shared_data / "msd_hippocampus"
    image = read_image(root / "imagesTr" / "hippocampus_001.nii.gz")
    labels = read_image(root / "labelsTr" / "hippocampus_001.nii.gz")[0].numpy().astype(np.uint8)
    series = make_series(tmp_path / "series", image[0].numpy().astype(np.int16), image.affine.numpy(), modality="MR")
    write_dicom_labels("rtstruct", labels, read_image(series).affine.numpy(), series, tmp_path / "rt.dcm",
                       ["background", "anterior", "posterior"], model="stunet_t.hippocampus")
    back, _, _ = read_dicom_object(tmp_path / "rt.dcm")
    for value in (1, 2):
        assert dice(back == value, labels == value) >= 0.95
    ds = pydicom.dcmread(tmp_path / "rt.dcm")
    assert {o.RTROIIdentificationCodeSequence[0].CodeMeaning for o in ds.RTROIObservationsSequence} == {"Hippocampus"}
    assert dciodvfy_errors(tmp_path / "rt.dcm") == []


def test_rtstruct_without_its_series_exits_2(tmp_path, rng):
    from medseg.io.dicom_objects import write_dicom_labels

    series = make_series(tmp_path / "a" / "series", rng.normal(size=(8, 8, 3)).astype(np.float32), np.eye(4))
    labels = np.zeros((8, 8, 3), np.uint8)
    labels[2:6, 2:6] = 1
    write_dicom_labels("rtstruct", labels, read_image(series).affine.numpy(), series, tmp_path / "a" / "rt.dcm",
                       ["background", "liver"])
    (tmp_path / "b").mkdir()
    shutil.move(tmp_path / "a" / "rt.dcm", tmp_path / "b" / "rt.dcm")
    shutil.rmtree(tmp_path / "a")
    result = runner.invoke(cli_main.app, ["convert", str(tmp_path / "b" / "rt.dcm"), str(tmp_path / "rt.nii.gz")])
    assert result.exit_code == 2 and "source series" in one_line_error(result)


def test_plastimatch_rasterises_our_contours_the_same(tmp_path, rng):
    """An independent RT reader (plastimatch, Debian package) fills our contours with XOR as medseg does."""
    import subprocess

    tool = shutil.which("plastimatch")
    if tool is None:
        pytest.skip("plastimatch (Debian package) is not installed: no independent RTSTRUCT reader to compare with")
    from medseg.io.dicom_objects import write_dicom_labels

    volume = (rng.normal(size=(24, 20, 4)) * 100).astype(np.int16)  # plastimatch reads 16-bit CT
    series = make_series(tmp_path / "series", volume, np.diag([0.8, 0.8, 2.5, 1]))
    labels = np.zeros((24, 20, 4), np.uint8)
    labels[3:20, 4:17, :] = 1
    labels[8:13, 8:12, 1:3] = 0  # a hole
    labels[20:23, 2:9, 1:4] = 2
    (tmp_path / "rt").mkdir()
    write_dicom_labels("rtstruct", labels, read_image(series).affine.numpy(), series, tmp_path / "rt" / "rt.dcm",
                       ["background", "liver", "spleen"])
    subprocess.run([tool, "convert", "--input", str(tmp_path / "rt"), "--referenced-ct", str(series),
                    "--output-prefix", str(tmp_path / "masks"), "--xor-contours"], check=True, capture_output=True)
    for value, name in ((1, "liver"), (2, "spleen")):
        np.testing.assert_array_equal(read_image(tmp_path / "masks" / f"{name}.mha")[0].numpy() > 0, labels == value)
