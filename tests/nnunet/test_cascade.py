"""3d_lowres -> 3d_cascade_fullres in one call: the cascade folder finds its previous stage where nnU-Net writes
it, runs it first and feeds its labels as one-hot channels. Fixture made with nnunetv2 itself
(tests/nnunet/make_fixtures.py --only cascade); ``expected/`` is ``nnUNetv2_predict -c 3d_cascade_fullres
-prev_stage_predictions expected_lowres/``. Bad cascades: one line, exit 2, nothing written."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.core.hashing import sha256_file
from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._fixtures import FIXTURES, dice_per_class, read

runner = CliRunner()
ROOT = FIXTURES / "cascade"
PREFIX = "nnUNetTrainerMedsegTiny__nnUNetPlansCascade__"
CASCADE, LOWRES = ROOT / f"{PREFIX}3d_cascade_fullres", ROOT / f"{PREFIX}3d_lowres"
CASES = ["hippocampus_026", "hippocampus_033", "hippocampus_034"]

pytestmark = pytest.mark.skipif(not CASCADE.is_dir(), reason="cascade fixture not built")


def _scan(case: str):
    return ROOT / "inputs" / f"{case}_0000.nii.gz"


def _refused(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_cli_runs_lowres_then_cascade_with_nnunets_labels(tmp_path):
    # hippocampus_033 is given 1.2 x 0.9 x 1.1 mm: lowres labels are resampled onto the 1 mm cascade grid
    case = "hippocampus_033"
    out = tmp_path / "out"
    result = runner.invoke(cli_main.app, ["predict", str(_scan(case)), "--model", str(CASCADE), "-o", str(out),
                                          "--exact"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read(out / f"{case}.nii.gz"), read(ROOT / "expected" / f"{case}.nii.gz"))
    sidecar = json.loads((out / f"{case}.json").read_text())
    stage = sidecar["parameters"]["nnunet"]["previous_stage"]
    assert stage["configuration"] == "3d_lowres"
    assert stage["fold_sha256"] == {"0": sha256_file(LOWRES / "fold_0" / "checkpoint_final.pth")}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_exact_is_nnunetv2_predict_and_default_path_close(case):
    model = NnUNetModel.load(CASCADE)
    assert model.previous is not None and model.network_channels == 3   # image + one-hot of labels 1, 2
    lowres, _ = model.previous.segment([_scan(case)], exact=True, postprocess=False)
    np.testing.assert_array_equal(lowres, read(ROOT / "expected_lowres" / f"{case}.nii.gz"))
    expected = read(ROOT / "expected" / f"{case}.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(model.predict([_scan(case)], exact=True)), expected)
    default = sitk.GetArrayFromImage(model.predict([_scan(case)]))   # nnU-Net's stitching: both stages fit
    assert (default == expected).mean() > 0.999
    assert all(d >= 0.995 for d in dice_per_class(default, expected).values())


def test_missing_previous_stage_is_refused_naming_where_it_was_looked_for(tmp_path):
    lone = tmp_path / CASCADE.name
    shutil.copytree(CASCADE, lone)
    out = tmp_path / "out"
    result = runner.invoke(cli_main.app, ["predict", str(_scan("hippocampus_033")), "--model", str(lone),
                                          "-o", str(out)])
    _refused(result, "3d_lowres stage this cascade needs is missing", f"{PREFIX}3d_lowres", "--previous-stage")
    assert not out.exists()
    # ... and found when given
    model = NnUNetModel.load(lone, previous_stage=LOWRES)
    assert model.previous.folder.path == LOWRES


def test_previous_stage_with_other_labels_or_configuration_is_refused(tmp_path):
    for name in (CASCADE.name, LOWRES.name):
        shutil.copytree(ROOT / name, tmp_path / name)
    dataset = json.loads((tmp_path / LOWRES.name / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "head": 1, "tail": 2}
    (tmp_path / LOWRES.name / "dataset.json").write_text(json.dumps(dataset))
    out = tmp_path / "out"
    args = ["predict", str(_scan("hippocampus_033")), "--model", str(tmp_path / CASCADE.name), "-o", str(out)]
    _refused(runner.invoke(cli_main.app, args), "previous stage's labels", "differ from the cascade's")
    # a fullres-like folder passed as the previous stage: its configuration is named
    _refused(runner.invoke(cli_main.app, [*args, "--previous-stage", str(CASCADE)]),
             "previous stage is '3d_cascade_fullres'")
    assert not out.exists()


def test_previous_stage_option_is_refused_for_a_plain_folder(tmp_path):
    from tests.nnunet._synthetic import make_folder

    folder = make_folder(tmp_path / "results")
    result = runner.invoke(cli_main.app, ["predict", str(_scan("hippocampus_033")), "--model", str(folder),
                                          "-o", str(tmp_path / "out"), "--previous-stage", str(LOWRES)])
    _refused(result, "not a cascade stage")
    result = runner.invoke(cli_main.app, ["predict", str(_scan("hippocampus_033")), "-o", str(tmp_path / "o"),
                                          "--previous-stage", str(LOWRES)])
    _refused(result, "--previous-stage apply to nnU-Net v2 result folders only")


def test_import_folder_pins_both_stages(tmp_path):
    from medseg.nnunet.registry import describe

    card = describe(CASCADE, hashes=True)
    assert card["previous_stage"]["configuration"] == "3d_lowres"
    assert card["previous_stage"]["folds"]["0"]["sha256"] == sha256_file(LOWRES / "fold_0" / "checkpoint_final.pth")
