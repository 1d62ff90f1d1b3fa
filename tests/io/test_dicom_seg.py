"""DICOM-SEG: predict from a DICOM series -> DICOM-SEG -> read back (highdicom and medseg) = the NIfTI output."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.core.errors import MedsegError
from medseg.io import read_image
from tests.conftest import random_oblique_affine
from tests.inference._models import expected, noise_volume
from tests.io.dicom_objects_helpers import (
    DCIODVFY,
    dciodvfy_errors,
    make_series,
    model_args,
    one_line_error,
)

hd = pytest.importorskip("highdicom")
pydicom = pytest.importorskip("pydicom")
runner = CliRunner()


@pytest.fixture
def medseg_logs(caplog, monkeypatch):
    """caplog for medseg's loggers at INFO (the CLI, once run in this process, stops their propagation)."""
    import logging

    monkeypatch.setattr(logging.getLogger("medseg"), "propagate", True)
    with caplog.at_level("INFO", logger="medseg"):
        yield caplog


def _predict(tmp_path, series, output, *extra):
    result = runner.invoke(cli_main.app, ["predict", str(series), "-o", str(output), *extra, *model_args(tmp_path)])
    assert result.exit_code == 0, result.output
    return output


def test_oblique_series_to_dicom_seg_reads_back_as_the_nifti_output(tmp_path, rng):
    volume = noise_volume((14, 11, 7), rng)
    affine = random_oblique_affine(rng)
    series = make_series(tmp_path / "series", volume, affine)
    seg = _predict(tmp_path, series, tmp_path / "seg.dcm")  # .dcm alone means DICOM-SEG
    nifti = read_image(_predict(tmp_path, series, tmp_path / "seg.nii.gz"))
    np.testing.assert_array_equal(nifti[0].numpy(), expected(read_image(series)[0].numpy()))

    back = read_image(seg)  # medseg: finds the series next to the SEG, same grid
    np.testing.assert_array_equal(back.numpy(), nifti.numpy())
    np.testing.assert_allclose(back.affine.numpy(), nifti.affine.numpy(), atol=1e-5)

    ds = hd.seg.segread(str(seg))  # highdicom: the standard object, referencing the source
    assert ds.SegmentationType == "BINARY" and ds.Modality == "SEG"
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(series.iterdir())]
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source[0].SeriesInstanceUID
    assert ds.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert ds.StudyInstanceUID == source[0].StudyInstanceUID
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in ds.SegmentSequence}
    assert labels == {1: "low", 2: "high"}
    first = ds.SegmentSequence[0]
    assert first.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Tissue"  # not in the code table
    assert len(first.RecommendedDisplayCIELabValue) == 3
    algorithm = first.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "medseg_test_threshold.fixed" and "weights_sha256" in algorithm.AlgorithmParameters
    uids = [str(d.SOPInstanceUID) for d in sorted(source, key=lambda d: int(d.InstanceNumber))]
    by_source = ds.get_pixels_by_source_instance(uids, combine_segments=True)
    np.testing.assert_array_equal(np.transpose(by_source, (2, 1, 0)), nifti[0].numpy())
    assert dciodvfy_errors(seg) == []

    converted = runner.invoke(cli_main.app, ["convert", str(seg), str(tmp_path / "back.nii.gz")])
    assert converted.exit_code == 0, converted.output
    np.testing.assert_array_equal(read_image(tmp_path / "back.nii.gz").numpy(), nifti.numpy())


def test_batch_writes_one_object_per_series(tmp_path, rng):
    for name in ("p1", "p2"):
        make_series(tmp_path / "patients" / name, noise_volume((9, 8, 4), rng), random_oblique_affine(rng))
    (tmp_path / "patients" / "notes.txt").write_text("not a scan")
    result = runner.invoke(cli_main.app, ["predict", str(tmp_path / "patients"), "-o", str(tmp_path / "out"),
                                          "--output-format", "dicom-seg", *model_args(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p1.dcm", "p1.json", "p2.dcm", "p2.json"]
    for name in ("p1", "p2"):
        series = tmp_path / "patients" / name
        back = read_image(tmp_path / "out" / f"{name}.dcm")  # series found as a sibling of out/
        np.testing.assert_array_equal(back[0].numpy(), expected(read_image(series)[0].numpy()))
        assert hd.seg.segread(str(tmp_path / "out" / f"{name}.dcm")).ReferencedSeriesSequence[0].SeriesInstanceUID \
            == pydicom.dcmread(next(series.iterdir())).SeriesInstanceUID


def test_codes_colours_empty_labels_and_label_values(tmp_path, rng, medseg_logs):
    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

    series = make_series(tmp_path / "series", rng.normal(size=(12, 10, 5)).astype(np.float32), np.diag([0.8, 0.8, 3, 1]))
    labels = np.zeros((12, 10, 5), np.uint8)
    labels[2:6, 3:7, 1:4] = 1
    labels[7:10, 2:5, 2:4] = 3  # label 2 (spleen) has no voxel
    names = ["background", "liver", "spleen", "kidney_left"]
    info = write_dicom_labels("dicom-seg", labels, read_image(series).affine.numpy(), series,
                              tmp_path / "seg.dcm", names, model="demo", weights_sha256="ab" * 32)
    assert info["format"] == "dicom-seg" and "left out of the DICOM-SEG: spleen" in medseg_logs.text
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    segments = {str(s.SegmentLabel): s for s in ds.SegmentSequence}
    assert sorted(segments) == ["kidney_left", "liver"]
    liver = segments["liver"].SegmentedPropertyTypeCodeSequence[0]
    assert (liver.CodeValue, liver.CodingSchemeDesignator) == ("10200004", "SCT")
    kidney = segments["kidney_left"].SegmentedPropertyTypeCodeSequence[0]
    assert kidney.CodeMeaning == "Kidney" and kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    array, _, extra = read_dicom_object(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(array, labels)  # values 1 and 3 come back, not segment numbers 1 and 2
    assert extra["label_names"] == {1: "liver", 3: "kidney_left"}
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []


def test_uneven_slices_keep_each_label_slice_on_its_own_image(tmp_path, rng, medseg_logs):
    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

    series = make_series(tmp_path / "series", rng.normal(size=(8, 9, 6)).astype(np.float32), np.eye(4))
    sorted(series.iterdir())[2].unlink()  # a missing slice
    image = read_image(series)
    labels = (image[0].numpy() > 0).astype(np.uint8)
    write_dicom_labels("dicom-seg", labels, image.affine.numpy(), series, tmp_path / "seg.dcm", ["bg", "fg"])
    assert "unevenly spaced" in medseg_logs.text
    array, _, _ = read_dicom_object(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(array, labels)
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    positions = {tuple(round(float(v), 3) for v in f.PlanePositionSequence[0].ImagePositionPatient)
                 for f in ds.PerFrameFunctionalGroupsSequence}
    sources = {tuple(round(float(v), 3) for v in pydicom.dcmread(f).ImagePositionPatient) for f in series.iterdir()}
    assert positions <= sources  # frames sit at the true source positions


def test_real_ct_slice_from_pydicom(tmp_path):
    from pydicom.data import get_testdata_file

    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

    ct = get_testdata_file("CT_small.dcm")
    if ct is None:
        pytest.skip("pydicom's CT_small.dcm test file is not installed")
    (tmp_path / "ct").mkdir()
    shutil.copy(ct, tmp_path / "ct" / "CT_small.dcm")
    image = read_image(tmp_path / "ct")
    labels = (image[0].numpy() > np.percentile(image[0].numpy(), 70)).astype(np.uint8)
    labels[labels.shape[0] // 2:] *= 2  # two structures
    write_dicom_labels("dicom-seg", labels, image.affine.numpy(), tmp_path / "ct", tmp_path / "seg.dcm",
                       ["background", "liver", "aorta"])
    array, affine, _ = read_dicom_object(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(array, labels.reshape(array.shape))
    np.testing.assert_allclose(affine[:3, :2], image.affine.numpy()[:3, :2], atol=1e-5)
    assert pydicom.dcmread(tmp_path / "seg.dcm").PatientID == pydicom.dcmread(ct).PatientID
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []


@pytest.mark.shared
def test_hippocampus_labels_become_coded_segments(tmp_path, shared_data):
    from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

    root = shared_data / "msd_hippocampus"
    image, reference = read_image(root / "imagesTr" / "hippocampus_001.nii.gz"), read_image(
        root / "labelsTr" / "hippocampus_001.nii.gz")
    series = make_series(tmp_path / "series", image[0].numpy().astype(np.int16), image.affine.numpy(), modality="MR")
    labels = reference[0].numpy().astype(np.uint8)
    write_dicom_labels("dicom-seg", labels, read_image(series).affine.numpy(), series, tmp_path / "seg.dcm",
                       ["background", "anterior", "posterior"], model="stunet_t.hippocampus")
    array, affine, _ = read_dicom_object(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(array, labels)
    np.testing.assert_allclose(affine, reference.affine.numpy(), atol=1e-5)
    meanings = {s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in pydicom.dcmread(tmp_path / "seg.dcm").SegmentSequence}
    assert meanings == {"Hippocampus"}
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []


def test_ohifs_dcmjs_loader_reads_the_same_voxels(tmp_path, rng):
    """dcmjs's Cornerstone adapter (OHIF's SEG loader) on an oblique series; needs node and ``npm install dcmjs``
    somewhere on NODE_PATH (e.g. ``NODE_PATH=/tmp/dcmjs-check/node_modules``), else skipped."""
    import json
    import os
    import subprocess
    from pathlib import Path

    from medseg.io.dicom_objects import write_dicom_labels
    from medseg.io.dicom_source import load_source_series

    node = shutil.which("node")
    if node is None or subprocess.run([node, "-e", "require('dcmjs')"], capture_output=True, check=False).returncode:
        pytest.skip("node with the dcmjs package (OHIF's DICOM-SEG loader) is not available")
    volume = (rng.normal(size=(16, 13, 6)) * 100).astype(np.int16)
    series = make_series(tmp_path / "series", volume, random_oblique_affine(rng))
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:10, 3:9, 1:5] = 1
    labels[11:15, 2:11, 2:6] = 3
    write_dicom_labels("dicom-seg", labels, read_image(series).affine.numpy(), series, tmp_path / "seg.dcm",
                       ["background", "liver", "spleen", "kidney_left"])
    files = [str(f) for f in load_source_series(series).files]
    script = Path(__file__).with_name("dcmjs_seg_check.js")
    run = subprocess.run([node, str(script), str(tmp_path / "seg.dcm"), *files], capture_output=True, text=True,
                         check=True, env=os.environ)
    out = json.loads(run.stdout)
    assert out["labels"] == ["liver", "kidney_left"]
    flat = np.zeros(labels.size, np.uint16)
    for index, segment in out["nonzero"]:
        flat[index] = segment
    got = flat.reshape(volume.shape[::-1]).transpose(2, 1, 0)  # (slice, row, column) -> (x, y, z)
    np.testing.assert_array_equal(got, np.select([labels == 1, labels == 3], [1, 2], 0))


def test_dciodvfy_is_installed_for_the_validity_checks():
    if DCIODVFY is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed: DICOM-SEG/RTSTRUCT objects are "
                    "checked for round trips only, not validated")


def test_bad_inputs_exit_2_with_one_line(tmp_path, rng):
    volume = noise_volume((8, 8, 4), rng)
    scan = tmp_path / "scan.nii.gz"
    from medseg.io import write_image

    write_image(volume[None], scan, affine=np.eye(4))
    nifti = runner.invoke(cli_main.app, ["predict", str(scan), "-o", str(tmp_path / "seg.dcm"), *model_args(tmp_path)])
    assert nifti.exit_code == 2 and "needs a DICOM series" in one_line_error(nifti)

    mixed = make_series(tmp_path / "mixed", volume, np.eye(4))
    make_series(tmp_path / "other", volume, np.diag([2, 2, 2, 1]))
    for f in (tmp_path / "other").iterdir():
        shutil.move(f, mixed / f"b{f.name}")
    result = runner.invoke(cli_main.app, ["predict", str(mixed), "-o", str(tmp_path / "m.dcm"), *model_args(tmp_path)])
    assert result.exit_code == 2 and "2 image series" in one_line_error(result)

    bare = make_series(tmp_path / "bare", volume, np.eye(4))
    for f in bare.iterdir():
        ds = pydicom.dcmread(f)
        del ds.FrameOfReferenceUID
        ds.save_as(f)
    result = runner.invoke(cli_main.app, ["predict", str(bare), "-o", str(tmp_path / "b.dcm"), *model_args(tmp_path)])
    assert result.exit_code == 2 and "FrameOfReferenceUID" in one_line_error(result)

    good = make_series(tmp_path / "good", volume, np.eye(4))
    wrong = tmp_path / "wrong.nii.gz"
    write_image(np.ones((1, 8, 8, 5), np.uint8), wrong, affine=np.eye(4))  # one slice too many
    result = runner.invoke(cli_main.app, ["convert", str(wrong), str(tmp_path / "w.dcm"), "--dicom-source", str(good)])
    assert result.exit_code == 2 and "does not match series" in one_line_error(result)
    shifted = tmp_path / "shifted.nii.gz"
    moved = np.eye(4)
    moved[0, 3] = 5.0
    write_image(np.ones((1, 8, 8, 4), np.uint8), shifted, affine=moved)
    result = runner.invoke(cli_main.app, ["convert", str(shifted), str(tmp_path / "s.dcm"), "--dicom-source", str(good)])
    assert result.exit_code == 2 and "does not match series" in one_line_error(result)
    assert not list(tmp_path.glob("*.dcm"))


def test_gantry_tilt_is_refused(tmp_path, rng):
    series = make_series(tmp_path / "tilted", noise_volume((8, 8, 5), rng), np.eye(4))
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.5 * z, z]  # each slice shifted in-plane: a tilted gantry
        ds.save_as(f)
    from medseg.io.dicom_source import load_source_series

    with pytest.raises(MedsegError, match="gantry tilt"):
        load_source_series(series)


def test_enhanced_sources_are_refused_clearly(tmp_path, rng):
    from pydicom.dataset import Dataset
    from pydicom.uid import EnhancedCTImageStorage

    from medseg.io.dicom_source import load_source_series

    series = make_series(tmp_path / "enhanced", noise_volume((6, 6, 3), rng), np.eye(4))
    for f in series.iterdir():  # per-frame functional groups, as an enhanced (multi-frame) CT has
        ds = pydicom.dcmread(f)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
        ds.NumberOfFrames = 1
        ds.PerFrameFunctionalGroupsSequence = [Dataset()]
        ds.save_as(f)
    with pytest.raises(MedsegError, match="enhanced/multi-frame"):
        load_source_series(series)
