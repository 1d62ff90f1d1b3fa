"""Bad nnU-Net folders and inputs: one line, exit code 2, nothing written."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from tests.nnunet._synthetic import make_folder, write_scan

runner = CliRunner()


def _predict(*args):
    result = runner.invoke(cli_main.app, ["predict", *map(str, args)])
    return result.exit_code, result.output


def _assert_refused(code, output, *needles):
    assert code == 2, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output


def test_a_folder_that_is_not_an_nnunet_result_names_what_is_missing(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "plans.json").write_text("{}")
    scan = write_scan(tmp_path / "scan.nii.gz")
    code, out = _predict(scan, "--model", folder, "-o", tmp_path / "out")
    _assert_refused(code, out, "dataset.json", "fold_*/")
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_match_the_plans_get_a_strict_load_report(tmp_path):
    folder = make_folder(tmp_path)
    ck = folder / "fold_0" / "checkpoint_final.pth"
    obj = torch.load(ck, weights_only=False)
    key = next(k for k in obj["network_weights"] if k.endswith("seg_layers.1.weight"))
    obj["network_weights"][key] = torch.zeros(5, 4, 1, 1, 1)
    del obj["network_weights"][next(iter(obj["network_weights"]))]
    torch.save(obj, ck)
    code, out = _predict(write_scan(tmp_path / "scan.nii.gz"), "--model", folder, "-o", tmp_path / "seg.nii.gz")
    _assert_refused(code, out, "do not match", "shape mismatch", "missing", "checkpoint_final.pth")
    assert not (tmp_path / "seg.nii.gz").exists()


def test_unknown_trainer_and_network_class_are_refused_by_name(tmp_path):
    folder = make_folder(tmp_path / "a", trainer="MyCustomTrainer")
    code, out = _predict(write_scan(tmp_path / "scan.nii.gz"), "--model", folder)
    _assert_refused(code, out, "MyCustomTrainer")
    folder = make_folder(tmp_path / "b", trainer="nnUNetTrainerBN")
    code, out = _predict(tmp_path / "scan.nii.gz", "--model", folder)
    _assert_refused(code, out, "nnUNetTrainerBN", "architecture")
    folder = make_folder(tmp_path / "c")
    plans = json.loads((folder / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = "my.pkg.FancyNet"
    (folder / "plans.json").write_text(json.dumps(plans))
    code, out = _predict(tmp_path / "scan.nii.gz", "--model", folder)
    _assert_refused(code, out, "my.pkg.FancyNet")
    assert not list(tmp_path.glob("scan_seg*"))


def test_channel_count_mismatch_says_which_channels_and_how(tmp_path):
    folder = make_folder(tmp_path, channels=4)
    scan = write_scan(tmp_path / "brain.nii.gz")
    code, out = _predict(scan, "--model", folder, "-o", tmp_path / "out")
    _assert_refused(code, out, "4 channels", "_0000 = T1", "_0003 = FLAIR", "CASE_0000")
    write_scan(tmp_path / "in" / "case_0000.nii.gz")
    write_scan(tmp_path / "in" / "case_0001.nii.gz")
    code, out = _predict(tmp_path / "in", "--model", folder, "-o", tmp_path / "out")
    _assert_refused(code, out, "case has channel files _0000, _0001", "case_0003")
    assert not (tmp_path / "out").exists()


def test_missing_folds_and_bad_fold_lists_are_refused(tmp_path):
    folder = make_folder(tmp_path, folds=("0", "1"))
    scan = write_scan(tmp_path / "scan.nii.gz")
    code, out = _predict(scan, "--model", folder, "--folds", "0,3")
    _assert_refused(code, out, "fold 3", "folds present: 0, 1")
    code, out = _predict(scan, "--model", folder, "--folds", "zero")
    _assert_refused(code, out, "--folds")
    code, out = _predict(scan, "--model", folder, "--checkpoint-name", "checkpoint_best.pth")
    _assert_refused(code, out, "checkpoint_best.pth")
    assert not list(tmp_path.glob("scan_seg*"))


def test_nnunet_options_with_a_zoo_model_are_refused(tmp_path):
    code, out = _predict(write_scan(tmp_path / "scan.nii.gz"), "--exact")
    _assert_refused(code, out, "--exact", "nnU-Net")


@pytest.mark.parametrize("unsafe", ["os.system"])
def test_a_fold_file_with_code_in_it_is_not_unpickled(tmp_path, unsafe):
    folder = make_folder(tmp_path)
    ck = folder / "fold_0" / "checkpoint_final.pth"
    obj = torch.load(ck, weights_only=False)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    obj["logging"] = Evil()
    torch.save(obj, ck)
    code, out = _predict(write_scan(tmp_path / "scan.nii.gz"), "--model", folder)
    _assert_refused(code, out, "checkpoint_final.pth")
    assert not (tmp_path / "pwned").exists()


def test_an_unreadable_case_stops_the_run_before_anything_is_written(tmp_path):
    folder = make_folder(tmp_path / "r")
    write_scan(tmp_path / "in" / "a_0000.nii.gz")
    (tmp_path / "in" / "b_0000.nii.gz").write_bytes(b"not an image")
    code, out = _predict(tmp_path / "in", "--model", folder, "-o", tmp_path / "out", "--no-tta")
    _assert_refused(code, out, "b_0000.nii.gz")
    assert not (tmp_path / "out").exists()
