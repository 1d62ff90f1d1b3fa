"""One line, exit 2, and hints that are true (issue 16, items 13-14): a single bad input, options the
hints name exist, a missing --from file says so, no unsafe torch advice, any byte order loads."""
from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.io import list_dicom_series, read_image, write_image
from tests.adversarial._probe import (
    assert_one_line_error,
    leftovers,
    model_args,
    run,
    scan,
    snapshot,
)
from tests.inference._models import expected

BAD_INPUTS = ["text renamed .nii.gz", "truncated .nii.gz", "4D", "JPEG to a 3D model"]


def _bad_input(folder, kind):
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "text renamed .nii.gz":
        path = folder / "scan.nii.gz"
        path.write_text("patient notes, not an image\n")
    elif kind == "truncated .nii.gz":
        good = scan(folder / "whole.nii.gz", shape=(20, 20, 20))
        path = folder / "scan.nii.gz"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        good.unlink()
    elif kind == "4D":
        path = folder / "scan.nii.gz"
        write_image(np.ones((3, 6, 6, 6), np.float32), path, affine=np.eye(4))
        img = nib.load(path)
        assert img.ndim == 4
    else:
        from PIL import Image

        path = folder / "photo.jpg"
        Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_a_single_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys, kind):
    path, args = _bad_input(tmp_path / "in", kind), model_args(tmp_path)
    before = snapshot(tmp_path / "in")
    code, out, err = run(monkeypatch, capsys, "predict", path, "-o", tmp_path / "out", *args)
    assert_one_line_error(code, err, path)
    assert "failed" not in out  # no results table for one input
    assert snapshot(tmp_path / "in") == before and not leftovers(tmp_path)


def test_a_batch_with_a_bad_input_keeps_its_table_and_exit_code_1(tmp_path, monkeypatch, capsys):
    scan(tmp_path / "in" / "good.nii.gz")
    bad = _bad_input(tmp_path / "in", "text renamed .nii.gz")
    code, out, err = run(monkeypatch, capsys, "predict", tmp_path / "in", "-o", tmp_path / "out",
                         *model_args(tmp_path))
    assert code == 1 and "1 done, 0 skipped, 1 failed" in out + err and "is not a NIfTI file" in out + err
    assert (tmp_path / "out" / "good.nii.gz").is_file() and not (tmp_path / "out" / bad.name).exists()
    assert "Traceback" not in out + err


def _two_series(tmp_path, rng):
    folder = tmp_path / "mixed"
    folder.mkdir()
    uids = []
    for name in ("first", "second"):
        write_image((rng.uniform(0, 2, (1, 6, 5, 4))).astype(np.float32), tmp_path / name,
                    affine=np.diag([1.0, 1.0, 2.0, 1.0]))
        for file in (tmp_path / name).iterdir():
            shutil.copy(file, folder / f"{name}_{file.name}")
        uids.append(list_dicom_series(tmp_path / name)[0].uid)
    return folder, uids


def test_two_series_hint_names_an_option_predict_has(tmp_path, monkeypatch, capsys, rng):
    folder, uids = _two_series(tmp_path, rng)
    args = model_args(tmp_path)
    code, _, err = run(monkeypatch, capsys, "predict", folder, "-o", tmp_path / "seg.nii.gz", *args)
    assert_one_line_error(code, err, [folder, "--series", *uids])
    code, _, err = run(monkeypatch, capsys, "predict", folder, "-o", tmp_path / "seg.nii.gz", "--series", uids[1],
                       *args)
    assert code == 0, err
    source = read_image(tmp_path / "second")
    seg = read_image(tmp_path / "seg.nii.gz")
    assert seg.shape == source.shape
    np.testing.assert_array_equal(seg[0].numpy(), expected(np.round(source[0].numpy(), 3)))


def test_4d_label_map_in_evaluate_gets_a_hint_that_works(tmp_path, monkeypatch, capsys):
    four_d = tmp_path / "pred.nii.gz"
    write_image(np.zeros((2, 5, 5, 5), np.uint8), four_d, affine=np.eye(4))
    ref = tmp_path / "ref.nii.gz"
    write_image(np.zeros((1, 5, 5, 5), np.uint8), ref, affine=np.eye(4))
    code, _, err = run(monkeypatch, capsys, "evaluate", four_d, ref, "-j", "1")
    line = assert_one_line_error(code, err, four_d)
    assert "medseg convert" in line and "--frame" in line
    hint_command = ["convert", four_d, tmp_path / "frame.nii.gz", "--frame", "1"]   # the hint, followed
    code, _, err = run(monkeypatch, capsys, *hint_command)
    assert code == 0, err
    code, _, err = run(monkeypatch, capsys, "evaluate", tmp_path / "frame.nii.gz", ref, "-j", "1")
    assert code == 0, err


def test_missing_from_file_says_missing_not_unknown_model(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    missing = tmp_path / "runs" / "best.pt"
    code, _, err = run(monkeypatch, capsys, "finetune", "--from", missing, "--model", "stunet_t", "--data",
                       tmp_path / "data", "-o", tmp_path / "ft")
    line = assert_one_line_error(code, err, [missing, "not found"])
    assert "unknown model" not in line


class Payload:
    """Stands for arbitrary pickled code in a hostile checkpoint."""


def test_checkpoint_errors_never_advise_weights_only_false(tmp_path, monkeypatch, capsys):
    hostile = tmp_path / "hostile.pt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 1, 1, 1, 1)}, "extra": Payload()}, hostile)
    args = model_args(tmp_path)
    x = scan(tmp_path / "x.nii.gz")
    code, _, err = run(monkeypatch, capsys, "predict", x, "-o", tmp_path / "seg.nii.gz", "--checkpoint", hostile,
                       *args)
    line = assert_one_line_error(code, err, hostile)
    for advice in ("weights_only", "trust the source", "safe_globals", "can still be loaded", "\x1b["):
        assert advice not in line
    from medseg.core.errors import MedsegError
    from medseg.training.checkpoint import load_checkpoint

    with pytest.raises(MedsegError) as info:
        load_checkpoint(hostile)
    assert "weights_only" not in str(info.value) and "safe_globals" not in str(info.value)


@pytest.mark.parametrize("dtype", [">i2", ">f4", "u1", ">f8", ">u2", "<i2"])
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_any_byte_order_and_dtype_loads_correctly(tmp_path, dtype, ext):
    values = (np.arange(4 * 5 * 6).reshape(4, 5, 6) % 97 - (0 if dtype[-2] == "u" else 40)).astype(dtype)
    header = nib.Nifti1Header(endianness=dtype[0] if dtype[0] in "<>" else ">")
    image = nib.Nifti1Image(values, np.diag([1.5, 2.0, 3.0, 1.0]), header=header)
    image.set_data_dtype(np.dtype(dtype))
    path = tmp_path / f"scan{ext}"
    nib.save(image, path)
    assert nib.load(path).header.endianness == header.endianness
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded[0].numpy(), values.astype(values.dtype.newbyteorder("=")))
    assert loaded.meta["original_dtype"] == str(np.dtype(dtype).newbyteorder("="))
    np.testing.assert_allclose(loaded.affine.numpy()[:3, :3], np.diag([1.5, 2.0, 3.0]), atol=1e-6)


def test_big_endian_nrrd_loads_correctly(tmp_path):
    values = (np.arange(6 * 5 * 4) % 50).astype(">i2").reshape(4, 5, 6)   # slowest axis first on disk
    path = tmp_path / "scan.nrrd"
    path.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 6 5 4\nendian: big\nencoding: raw\n"
                     b"space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,2)\n"
                     b"space origin: (0,0,0)\n\n" + values.tobytes())
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded[0].numpy(), values.transpose(2, 1, 0).astype(np.int16))
