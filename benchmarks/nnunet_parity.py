"""Agreement of ``medseg`` with ``nnUNetv2_predict`` on the committed tiny nnU-Net v2 fixtures.

For every fixture (tests/nnunet/fixtures, made by tests/nnunet/make_fixtures.py) and held-out case: the voxel
agreement of ``--exact`` and of the default engine path with nnU-Net's saved labels, the default path's
per-class Dice, and both wall times (one torch thread). Needs no nnunetv2::

    PYTHONPATH=$PWD python benchmarks/nnunet_parity.py [--only hippo_3d,aniso,cascade] [--backend auto|torch]

``--backend auto`` (the default, as ``medseg predict``): the default path's windows on the guarded CPU
runtime (OpenVINO fp32 when installed); ``torch``: PyTorch fp32 windows.

``cascade`` (3d_lowres -> 3d_cascade_fullres in one call) is its own layout: two result folders side by side.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medseg.nnunet.predictor import NnUNetModel, RuntimeSummary
from tests.nnunet._fixtures import (
    FIXTURES,
    cases,
    dice_per_class,
    fixture_names,
    inputs,
    read,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join([*fixture_names(), "cascade"]))
    parser.add_argument("--backend", default="auto", choices=["auto", "torch"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.only.split(",")
    runs = [(name, ["0"], "expected") for name in names]
    cascade = FIXTURES / "cascade" / "nnUNetTrainerMedsegTiny__nnUNetPlansCascade__3d_cascade_fullres"
    if "hippo_3d" in names:
        runs.append(("hippo_3d", ["0", "1"], "expected_f01"))
    for name, folds, tag in runs:
        model = NnUNetModel.load(cascade if name == "cascade" else FIXTURES / name / "model", folds=folds)
        exact_model = model
        if args.backend != "torch":
            model = NnUNetModel.load(cascade if name == "cascade" else FIXTURES / name / "model", folds=folds)
            model.use_runtime(args.backend, "auto")
        for case in cases(name):
            expected = read(FIXTURES / name / tag / f"{case}.nii.gz")
            t = time.perf_counter()
            exact = sitk.GetArrayFromImage(exact_model.predict(inputs(name, case), exact=True))
            t_exact = time.perf_counter() - t
            t = time.perf_counter()
            default = sitk.GetArrayFromImage(model.predict(inputs(name, case), exact=False))
            t_default = time.perf_counter() - t
            print(json.dumps({
                "fixture": name, "folds": ",".join(folds), "case": case,
                "label_voxels": np.bincount(expected.ravel()).tolist(),
                "exact_agreement": round(float((exact == expected).mean()), 6),
                "default_agreement": round(float((default == expected).mean()), 6),
                "default_dice": {c: round(d, 4) for c, d in dice_per_class(default, expected).items()},
                "exact_s": round(t_exact, 2), "default_s": round(t_default, 2),
                "default_runtime": RuntimeSummary(model).describe(),
                "stitching": model.last_tta.get("stitching")}), flush=True)


if __name__ == "__main__":
    main()
