"""``medseg predict`` on an nnU-Net v2 folder or TotalSegmentator's folders must not import MONAI or the model zoo
(issues 17/18/21: ``import monai`` loads every MONAI subpackage, matplotlib and scipy.signal included, about
2.5 CPU-s of every run, and those paths use none of it).

Each run is a fresh interpreter: the CLI runs in-process, then the wrapper prints which of the watched modules
ended up in ``sys.modules``. The last test shows the wrapper does see MONAI and the zoo when they are imported.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._imports import run_cli
from tests.nnunet._fixtures import FIXTURES, inputs

# what these paths must not import: MONAI (and what only it pulls in), the zoo's networks and predictor
WATCHED = ("monai", "matplotlib", "scipy.signal", "medseg.api", "medseg.inference.predictor",
           "medseg.transforms", "medseg.models.stunet", "medseg.models.swin_unetr")

def _run(args: list[str], env: dict[str, str] | None = None) -> dict:
    return run_cli(args, WATCHED, {"OMP_NUM_THREADS": "1", **(env or {})})


def test_nnunet_folder_predict_imports_neither_monai_nor_the_zoo(tmp_path):
    folder = FIXTURES / "hippo_3d" / "model"
    if not (folder / "plans.json").is_file():
        pytest.skip("nnU-Net fixtures are not present")
    case = inputs("hippo_3d", "hippocampus_026")[0]
    out = tmp_path / "seg.nii.gz"
    result = _run(["predict", str(case), "-o", str(out), "--model", str(folder), "--folds", "0", "--no-tta",
                   "--backend", "torch", "--precision", "fp32", "--stats", "--threads", "1"])
    assert result == {"code": 0, "loaded": []}
    sidecar = json.loads((tmp_path / "seg.json").read_text())
    assert out.is_file() and (tmp_path / "seg_stats.csv").is_file()
    assert sidecar["environment"]["monai"]   # MONAI's version is still recorded, read from its metadata


def test_totalsegmentator_predict_imports_neither_monai_nor_the_zoo(tmp_path):
    from tests.totalseg._parts import make_task, write_ct

    make_task(tmp_path / "home", "total_fast")
    ct = write_ct(tmp_path / "ct.nii.gz")
    out = tmp_path / "seg.nii.gz"
    result = _run(["predict", str(ct), "-o", str(out), "--model", "totalsegmentator:total_fast",
                   "--backend", "torch", "--precision", "fp32", "--threads", "1"],
                  env={"TOTALSEG_HOME_DIR": str(tmp_path / "home")})
    assert result == {"code": 0, "loaded": []}
    assert out.is_file() and Path(tmp_path / "seg.json").is_file()


def test_wrapper_sees_monai_and_the_zoo():
    # the check itself can fail: a name outside the shipped index is looked up in the registry, whose first
    # look-up imports every model module (MONAI's networks among them)
    result = _run(["models", "show", "no_such_model"])
    assert result["code"] == 2
    assert {"monai", "medseg.models.stunet", "medseg.models.swin_unetr"} <= set(result["loaded"])
