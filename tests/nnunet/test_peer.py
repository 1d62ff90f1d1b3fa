"""Live check against nnunetv2 itself (run from an environment that has it, e.g. a private venv)::

    PYTHONPATH=$PWD /work/venv-nnunet/bin/python -m pytest -m peer tests/nnunet/test_peer.py
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from medseg.nnunet.predictor import NnUNetModel
from tests.nnunet._fixtures import FIXTURES, fixture_names, inputs, read

pytestmark = [pytest.mark.peer, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("nnunetv2") is None, reason="nnunetv2 not importable")]


@pytest.mark.parametrize("name", [n for n in ("hippo_3d", "aniso") if n in fixture_names()])
def test_nnunetv2_predict_live_gives_our_exact_labels(tmp_path, name):
    case = "hippocampus_033"
    src = tmp_path / "in"
    src.mkdir()
    for f in inputs(name, case):
        (src / f.name).write_bytes(f.read_bytes())
    code = (
        "import sys, torch\n"
        "from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor\n"
        "p = nnUNetPredictor(tile_step_size=0.5, device=torch.device('cpu'), allow_tqdm=False)\n"
        "p.initialize_from_trained_model_folder(sys.argv[1], use_folds=(0,))\n"
        "p.predict_from_files(sys.argv[2], sys.argv[3], num_processes_preprocessing=1,\n"
        "                     num_processes_segmentation_export=1)\n")
    env = {**os.environ, "nnUNet_raw": str(tmp_path), "nnUNet_preprocessed": str(tmp_path),
           "nnUNet_results": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code, str(FIXTURES / name / "model"), str(src), str(tmp_path / "out")],
                   check=True, env=env, capture_output=True)
    theirs = read(tmp_path / "out" / f"{case}.nii.gz")
    ours = sitk.GetArrayFromImage(NnUNetModel.load(FIXTURES / name / "model", folds=["0"])
                                  .predict(inputs(name, case), exact=True))
    assert (ours == theirs).all()
    assert (theirs == read(Path(FIXTURES / name / "expected" / f"{case}.nii.gz"))).all()  # the fixture is current


CASCADE_ROOT = FIXTURES / "cascade"
CASCADE_PREFIX = "nnUNetTrainerMedsegTiny__nnUNetPlansCascade__"


@pytest.mark.skipif(not (CASCADE_ROOT / f"{CASCADE_PREFIX}3d_cascade_fullres").is_dir(), reason="no cascade fixture")
def test_nnunetv2_lowres_then_cascade_live_gives_our_exact_labels(tmp_path):
    case = "hippocampus_033"  # 1.2 x 0.9 x 1.1 mm: the lowres labels are resampled onto the cascade's grid
    src = tmp_path / "in"
    src.mkdir()
    (src / f"{case}_0000.nii.gz").write_bytes((CASCADE_ROOT / "inputs" / f"{case}_0000.nii.gz").read_bytes())
    code = (
        "import sys, torch\n"
        "from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor\n"
        "def run(folder, out, prev=None):\n"
        "    p = nnUNetPredictor(tile_step_size=0.5, device=torch.device('cpu'), allow_tqdm=False)\n"
        "    p.initialize_from_trained_model_folder(folder, use_folds=(0,))\n"
        "    p.predict_from_files(sys.argv[3], out, folder_with_segs_from_prev_stage=prev,\n"
        "                         num_processes_preprocessing=1, num_processes_segmentation_export=1)\n"
        "run(sys.argv[1], sys.argv[4] + '/lowres')\n"
        "run(sys.argv[2], sys.argv[4] + '/cascade', sys.argv[4] + '/lowres')\n")
    env = {**os.environ, "nnUNet_raw": str(tmp_path), "nnUNet_preprocessed": str(tmp_path),
           "nnUNet_results": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code, str(CASCADE_ROOT / f"{CASCADE_PREFIX}3d_lowres"),
                    str(CASCADE_ROOT / f"{CASCADE_PREFIX}3d_cascade_fullres"), str(src), str(tmp_path)],
                   check=True, env=env, capture_output=True)
    theirs = read(tmp_path / "cascade" / f"{case}.nii.gz")
    model = NnUNetModel.load(CASCADE_ROOT / f"{CASCADE_PREFIX}3d_cascade_fullres")
    ours = sitk.GetArrayFromImage(model.predict([CASCADE_ROOT / "inputs" / f"{case}_0000.nii.gz"], exact=True))
    assert (ours == theirs).all()
    assert (theirs == read(CASCADE_ROOT / "expected" / f"{case}.nii.gz")).all()  # the fixture is current
