"""Commands that need no network must not import torch or MONAI (issue 21: `medseg info` took 6 s for that).

Each command runs in a fresh interpreter: the CLI app runs in-process, then the wrapper prints which heavy
packages ended up in ``sys.modules``. Nothing here can be satisfied without the imports really being absent.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tests.cli._imports import run_cli


def _run(args: list[str]) -> dict:
    return run_cli(args, ("torch", "monai"), timeout=120)


@pytest.fixture(scope="module")
def label_map(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cold")
    array = np.zeros((8, 9, 7), np.uint8)
    array[2:5, 3:6, 1:4] = 1
    path = folder / "seg.nii.gz"
    nib.save(nib.Nifti1Image(array, np.diag([1.5, 1.0, 2.0, 1.0])), path)
    return path


@pytest.mark.parametrize("args", [
    ["--help"],
    ["info", "{seg}"],
    ["info", "{seg}", "--json"],
    ["convert", "{seg}", "{out}.nrrd"],
    ["models", "list"],
    ["models", "list", "swin*", "--json"],
    ["models", "show", "stunet_t"],
    ["models", "show", "stunet_t.hippocampus", "--json"],
    ["view", "{seg}", "{seg}", "-o", "{out}.html"],
    ["predict", "--help"],
], ids=lambda a: " ".join(a).replace("{seg}", "SEG").replace("{out}", "OUT"))
def test_light_commands_import_neither_torch_nor_monai(args, label_map):
    args = [a.format(seg=label_map, out=label_map.parent / "out") for a in args]
    result = _run(args)
    assert result == {"code": 0, "loaded": []}


@pytest.mark.parametrize("convention", ["monai", "surface-distance"])
def test_evaluate_on_label_maps_imports_neither_torch_nor_monai(label_map, convention):
    # MONAI's float32 reductions are repeated in numpy (medseg/metrics/float32.py), the surfel table is shipped
    result = _run(["evaluate", str(label_map), str(label_map), "--convention", convention, "-j", "1"])
    assert result == {"code": 0, "loaded": []}


def test_wrapper_sees_heavy_imports():
    # the check itself can fail: a name outside the shipped zoo is looked up in the registry, which imports torch
    result = _run(["models", "show", "no_such_model"])
    assert result["code"] == 2 and "torch" in result["loaded"]
