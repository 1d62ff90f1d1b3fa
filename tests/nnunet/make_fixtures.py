"""Train tiny nnU-Net v2 models with nnunetv2 itself and keep their result folders as medseg test fixtures.

Run with an environment that has ``nnunetv2`` (a private venv, never medseg's runtime)::

    python -m venv --system-site-packages /work/venv-nnunet
    /work/venv-nnunet/bin/pip install 'torch==2.13.0' nnunetv2
    nice -n 10 /work/venv-nnunet/bin/python tests/nnunet/make_fixtures.py [--only hippo_3d,aniso]

Each fixture ``tests/nnunet/fixtures/<name>/`` holds a trained-model folder ``model/`` (plans.json,
dataset.json, dataset_fingerprint.json, fold_k/checkpoint_final.pth with the optimizer state dropped to keep
it small), held-out inputs ``inputs/<case>_0000.nii.gz`` and ``nnUNetv2_predict``'s labels ``expected/<case>.nii.gz``
(``expected_f01`` for the 2-fold ensemble). The plans are shrunk (4-32 features) so every folder stays small;
training is one epoch of two iterations on the CPU, so the weights stay close to nnU-Net's He initialisation:
their label maps mix all classes with small margins, a stricter parity check than a collapsed all-background
model (which is what a few more epochs gave here). The patch is halved to keep the tests quick. The data are MSD Task04 hippocampus (CC-BY-SA 4.0) and TotalSegmentator's example CT
(Apache-2.0) from ``../shared/data``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"
FIXTURES = HERE / "fixtures"
WORK = Path(os.environ.get("NNUNET_FIXTURE_WORK", "/tmp/nnunet_fixture_work"))
TRAINER = "nnUNetTrainerMedsegTiny"
BIN = Path(sys.executable).parent

TRAINER_SOURCE = '''
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainerMedsegTiny(nnUNetTrainer):
    """A few epochs of a few iterations: test fixtures for medseg, not a useful model."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cpu")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
        self.initial_lr = 1e-3

    def perform_actual_validation(self, save_probabilities: bool = False):
        pass
'''

_HIPPO = sorted(p.name[:-7] for p in (DATA / "msd_hippocampus" / "imagesTr").glob("*.nii.gz"))
HIPPO_TRAIN, HIPPO_TEST = _HIPPO[:12], _HIPPO[12:15]


def _env() -> dict:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(WORK / "raw"), nnUNet_preprocessed=str(WORK / "pre"),
               nnUNet_results=str(WORK / "results"), nnUNet_def_n_proc="1",
               OMP_NUM_THREADS="2")
    return env


def _run(*args: str, **env: str) -> None:
    print("+", " ".join(args), flush=True)  # noqa: T201 (a script)
    subprocess.run([str(BIN / args[0]), *args[1:]], check=True, env={**_env(), **env}, stdout=subprocess.DEVNULL)


def install_trainer() -> None:
    import nnunetv2

    target = Path(nnunetv2.__file__).parent / "training" / "nnUNetTrainer" / f"{TRAINER}.py"
    target.write_text(TRAINER_SOURCE)


def _write(image: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _hippo(case: str, kind: str) -> sitk.Image:
    folder = "imagesTr" if kind == "image" else "labelsTr"
    return sitk.ReadImage(str(DATA / "msd_hippocampus" / folder / f"{case}.nii.gz"))


def _dataset(did: int, name: str, cases: dict, tests: dict, channels: dict, labels: dict, **extra) -> Path:
    """cases: name -> (image or [images], label); tests: name -> image or [images]."""
    root = WORK / "raw" / f"Dataset{did:03d}_{name}"
    shutil.rmtree(root, ignore_errors=True)
    for case, (images, label) in cases.items():
        for c, image in enumerate(images if isinstance(images, list) else [images]):
            _write(image, root / "imagesTr" / f"{case}_{c:04d}.nii.gz")
        _write(label, root / "labelsTr" / f"{case}.nii.gz")
    for case, images in tests.items():
        for c, image in enumerate(images if isinstance(images, list) else [images]):
            _write(image, root / "imagesTs" / f"{case}_{c:04d}.nii.gz")
    meta = {"channel_names": channels, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz", **extra}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


def shrink_plans(did: int, source: str, target: str, features: int = 4, cap: int = 32) -> None:
    folder = next((WORK / "pre").glob(f"Dataset{did:03d}_*"))
    plans = json.loads((folder / f"{source}.json").read_text())
    plans["plans_name"] = target
    for cfg in plans["configurations"].values():
        arch = cfg.get("architecture")
        if arch is None:
            continue
        kw = arch["arch_kwargs"]
        n = kw["n_stages"]
        kw["features_per_stage"] = [min(features * 2 ** i, cap) for i in range(n)]
        # halve the patch, keeping it divisible by the network's total stride on each axis
        total = [int(np.prod([s[a] for s in kw["strides"]])) for a in range(len(cfg["patch_size"]))]
        cfg["patch_size"] = [max(t, (p // 2) // t * t) for p, t in zip(cfg["patch_size"], total)]
        if "batch_size" in cfg:
            cfg["batch_size"] = 2
    (folder / f"{target}.json").write_text(json.dumps(plans, indent=1))


def train(did: int, configs: list[str], folds: list[int], plans: str) -> None:
    for cfg in configs:
        for fold in folds:
            _run("nnUNetv2_train", str(did), cfg, str(fold), "-tr", TRAINER, "-p", plans, "-device", "cpu",
                 nnUNet_n_proc_DA="0")


def collect(name: str, did: int, cfg: str, plans: str, folds: list[int], ensembles: dict) -> None:
    """Copy the result folder (weights only) and the test inputs, run nnUNetv2_predict for each fold set."""
    results = next((WORK / "results").glob(f"Dataset{did:03d}_*")) / f"{TRAINER}__{plans}__{cfg}"
    raw = next((WORK / "raw").glob(f"Dataset{did:03d}_*"))
    out = FIXTURES / name
    shutil.rmtree(out, ignore_errors=True)
    model = out / "model"
    model.mkdir(parents=True)
    for f in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        shutil.copy(results / f, model / f)
    import torch

    for fold in folds:
        ck = torch.load(results / f"fold_{fold}" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        ck["optimizer_state"] = None
        ck["grad_scaler_state"] = None
        (model / f"fold_{fold}").mkdir()
        torch.save(ck, model / f"fold_{fold}" / "checkpoint_final.pth")
    shutil.copytree(raw / "imagesTs", out / "inputs")
    for tag, use in ensembles.items():
        _run("nnUNetv2_predict", "-i", str(out / "inputs"), "-o", str(out / tag), "-d", str(did), "-c", cfg,
             "-p", plans, "-tr", TRAINER, "-f", *map(str, use), "-device", "cpu", "-npp", "1", "-nps", "1",
             "--disable_progress_bar")
        for extra in ("plans.json", "dataset.json", "predict_from_raw_data_args.json"):
            (out / tag / extra).unlink(missing_ok=True)


def _respaced(image: sitk.Image, spacing) -> sitk.Image:
    image = sitk.Image(image)
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def hippo_sets(spacing=None, test_spacings=None):
    cases = {c: (_hippo(c, "image"), _hippo(c, "label")) for c in HIPPO_TRAIN}
    if spacing is not None:
        cases = {c: (_respaced(i, spacing), _respaced(s, spacing)) for c, (i, s) in cases.items()}
    tests = {}
    for k, c in enumerate(HIPPO_TEST):
        sp = (test_spacings or [None] * 3)[k]
        tests[c] = _hippo(c, "image") if sp is None else _respaced(_hippo(c, "image"), sp)
    return cases, tests


HIPPO_LABELS = {"background": 0, "Anterior": 1, "Posterior": 2}


def make_hippo(only: set) -> None:
    # (a) 3d_fullres, (d) 2d, (f) 2 folds; one held-out case has another spacing so resampling is exercised
    cases, tests = hippo_sets(test_spacings=[None, (1.2, 0.9, 1.1), None])
    _dataset(501, "Hippo", cases, tests, {"0": "MRI"}, HIPPO_LABELS)
    _run("nnUNetv2_plan_and_preprocess", "-d", "501", "-c", "3d_fullres", "-npfp", "1", "--no_pp")
    shrink_plans(501, "nnUNetPlans", "nnUNetPlansTiny")
    _run("nnUNetv2_preprocess", "-d", "501", "-plans_name", "nnUNetPlansTiny", "-c", "3d_fullres", "2d",
         "-np", "1", "1")
    if "hippo_3d" in only:
        train(501, ["3d_fullres"], [0, 1], "nnUNetPlansTiny")
        collect("hippo_3d", 501, "3d_fullres", "nnUNetPlansTiny", [0, 1], {"expected": [0], "expected_f01": [0, 1]})
    if "hippo_2d" in only:
        train(501, ["2d"], [0], "nnUNetPlansTiny")
        collect("hippo_2d", 501, "2d", "nnUNetPlansTiny", [0], {"expected": [0]})
    if "resenc" in only:
        _run("nnUNetv2_plan_experiment", "-d", "501", "-pl", "nnUNetPlannerResEncM")
        shrink_plans(501, "nnUNetResEncUNetMPlans", "nnUNetResEncTiny")
        _run("nnUNetv2_preprocess", "-d", "501", "-plans_name", "nnUNetResEncTiny", "-c", "3d_fullres", "-np", "1")
        train(501, ["3d_fullres"], [0], "nnUNetResEncTiny")
        collect("resenc", 501, "3d_fullres", "nnUNetResEncTiny", [0], {"expected": [0]})


def make_aniso() -> None:
    # (c) 0.8 x 0.8 x 4 mm training data (x, y, z in the file): the anisotropic resampling rule applies to the
    # held-out cases given other spacings
    cases, tests = hippo_sets((0.8, 0.8, 4.0), [(0.8, 0.8, 4.0), (0.7, 0.9, 3.0), (1.0, 1.0, 5.0)])
    _dataset(502, "HippoAniso", cases, tests, {"0": "MRI"}, HIPPO_LABELS)
    _run("nnUNetv2_plan_and_preprocess", "-d", "502", "-c", "3d_fullres", "-npfp", "1", "--no_pp")
    shrink_plans(502, "nnUNetPlans", "nnUNetPlansTiny")
    _run("nnUNetv2_preprocess", "-d", "502", "-plans_name", "nnUNetPlansTiny", "-c", "3d_fullres", "-np", "1")
    train(502, ["3d_fullres"], [0], "nnUNetPlansTiny")
    collect("aniso", 502, "3d_fullres", "nnUNetPlansTiny", [0], {"expected": [0]})


def make_regions() -> None:
    # (e) region-based: whole hippocampus (1 or 2) and posterior (2), sigmoid heads
    cases, tests = hippo_sets(test_spacings=[None, (1.2, 0.9, 1.1), None])
    _dataset(503, "HippoRegions", cases, tests, {"0": "MRI"},
             {"background": 0, "whole": [1, 2], "posterior": [2]}, regions_class_order=[1, 2])
    _run("nnUNetv2_plan_and_preprocess", "-d", "503", "-c", "3d_fullres", "-npfp", "1", "--no_pp")
    shrink_plans(503, "nnUNetPlans", "nnUNetPlansTiny")
    _run("nnUNetv2_preprocess", "-d", "503", "-plans_name", "nnUNetPlansTiny", "-c", "3d_fullres", "-np", "1")
    train(503, ["3d_fullres"], [0], "nnUNetPlansTiny")
    collect("regions", 503, "3d_fullres", "nnUNetPlansTiny", [0], {"expected": [0]})


def make_ct() -> None:
    # (b) CTNormalization: crops of TotalSegmentator's example CT (3 mm) with four organs; held out: the
    # example_ct_sm crop and the 1.5 mm contrast CT (resampled to 3 mm and back)
    ts = DATA / "totalsegmentator_example"
    ct = sitk.ReadImage(str(ts / "example_ct.nii.gz"), sitk.sitkInt16)
    seg = sitk.ReadImage(str(ts / "example_seg_fast_force_split.nii.gz"))
    arr = sitk.GetArrayFromImage(seg)
    keep = np.zeros_like(arr, dtype=np.uint8)
    for new, old in enumerate((1, 2, 3, 5), start=1):  # spleen, kidneys, liver
        keep[arr == old] = new
    seg4 = sitk.GetImageFromArray(keep)
    seg4.CopyInformation(seg)
    cases = {}
    for k, z0 in enumerate(range(0, 72, 9)):
        cases[f"ct_{k:03d}"] = (ct[:, :, z0:z0 + 40], seg4[:, :, z0:z0 + 40])
    tests = {"ct_sm": sitk.ReadImage(str(ts / "example_ct_sm.nii.gz"), sitk.sitkInt16),
             "ct_1p5mm": sitk.ReadImage(str(ts / "aorta_ct_1p5mm" / "ct_cropped.nii.gz"))[:, :, 40:120]}
    _dataset(504, "CTOrgans", cases, tests, {"0": "CT"},
             {"background": 0, "spleen": 1, "kidney_right": 2, "kidney_left": 3, "liver": 4})
    _run("nnUNetv2_plan_and_preprocess", "-d", "504", "-c", "3d_fullres", "-npfp", "1", "--no_pp")
    shrink_plans(504, "nnUNetPlans", "nnUNetPlansTiny")
    _run("nnUNetv2_preprocess", "-d", "504", "-plans_name", "nnUNetPlansTiny", "-c", "3d_fullres", "-np", "1")
    train(504, ["3d_fullres"], [0], "nnUNetPlansTiny")
    collect("ct", 504, "3d_fullres", "nnUNetPlansTiny", [0], {"expected": [0]})


CASCADE_PLANS = "nnUNetPlansCascade"


def cascade_plans(did: int) -> None:
    """(h) A lowres -> cascade pair in the layout nnU-Net's planner writes for large images (hippocampus is
    too small for it to plan one): 3d_lowres at 2 mm with ``next_stage``, 3d_cascade_fullres inheriting
    3d_fullres with ``previous_stage``. Networks of 3 stages, 4-8 features: folds of tens of KB."""
    folder = next((WORK / "pre").glob(f"Dataset{did:03d}_*"))
    plans = json.loads((folder / "nnUNetPlans.json").read_text())
    plans["plans_name"] = CASCADE_PLANS
    full = plans["configurations"]["3d_fullres"]
    kw = full["architecture"]["arch_kwargs"]
    kw.update(n_stages=3, features_per_stage=[4, 8, 8], kernel_sizes=[[3, 3, 3]] * 3,
              strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]], n_conv_per_stage=[2, 2, 2], n_conv_per_stage_decoder=[2, 2])
    full.update(patch_size=[16, 24, 16], batch_size=2, data_identifier=f"{CASCADE_PLANS}_3d_fullres")
    low = json.loads(json.dumps(full))
    low.update(patch_size=[16, 16, 16], spacing=[2.0, 2.0, 2.0], data_identifier=f"{CASCADE_PLANS}_3d_lowres",
               median_image_size_in_voxels=[m / 2 for m in full["median_image_size_in_voxels"]],
               next_stage="3d_cascade_fullres")
    plans["configurations"] = {"3d_lowres": low, "3d_fullres": full,
                               "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}}
    (folder / f"{CASCADE_PLANS}.json").write_text(json.dumps(plans, indent=1))


def make_cascade() -> None:
    # (h) 3d_lowres then 3d_cascade_fullres. The cascade trains on the lowres stage's cross-validation
    # predictions (predicted_next_stage/, which needs all five lowres folds); this fixture puts the training
    # labels there instead (weights near initialisation either way). Held out: one case at another spacing, so
    # the lowres labels are resampled onto the fullres grid (nnU-Net's seg resampling) before the one-hot.
    cases, tests = hippo_sets(test_spacings=[None, (1.2, 0.9, 1.1), None])
    _dataset(505, "HippoCascade", cases, tests, {"0": "MRI"}, HIPPO_LABELS)
    _run("nnUNetv2_plan_and_preprocess", "-d", "505", "-c", "3d_fullres", "-npfp", "1", "--no_pp")
    cascade_plans(505)
    _run("nnUNetv2_preprocess", "-d", "505", "-plans_name", CASCADE_PLANS, "-c", "3d_lowres", "3d_fullres",
         "-np", "1", "1")
    train(505, ["3d_lowres"], [0], CASCADE_PLANS)
    pre = next((WORK / "pre").glob("Dataset505_*"))
    results = next((WORK / "results").glob("Dataset505_*"))
    prev = results / f"{TRAINER}__{CASCADE_PLANS}__3d_lowres" / "predicted_next_stage" / "3d_cascade_fullres"
    prev.mkdir(parents=True, exist_ok=True)
    import blosc2

    for seg in (pre / f"{CASCADE_PLANS}_3d_fullres").glob("*_seg.b2nd"):  # labels (z, y, x) as lowres writes them
        labels = np.maximum(blosc2.open(urlpath=str(seg), mode="r")[:][0], 0)
        blosc2.asarray(np.ascontiguousarray(labels), urlpath=str(prev / seg.name.replace("_seg.b2nd", ".b2nd")),
                       mode="w")
    train(505, ["3d_cascade_fullres"], [0], CASCADE_PLANS)
    raw = next((WORK / "raw").glob("Dataset505_*"))
    out = FIXTURES / "cascade"
    shutil.rmtree(out, ignore_errors=True)
    import torch

    for cfg in ("3d_lowres", "3d_cascade_fullres"):
        name = f"{TRAINER}__{CASCADE_PLANS}__{cfg}"
        (out / name / "fold_0").mkdir(parents=True)
        for f in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
            shutil.copy(results / name / f, out / name / f)
        ck = torch.load(results / name / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        ck["optimizer_state"] = None
        ck["grad_scaler_state"] = None
        torch.save(ck, out / name / "fold_0" / "checkpoint_final.pth")
    shutil.copytree(raw / "imagesTs", out / "inputs")
    common = ["-d", "505", "-p", CASCADE_PLANS, "-tr", TRAINER, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
              "--disable_progress_bar"]
    _run("nnUNetv2_predict", "-i", str(out / "inputs"), "-o", str(out / "expected_lowres"), "-c", "3d_lowres", *common)
    _run("nnUNetv2_predict", "-i", str(out / "inputs"), "-o", str(out / "expected"), "-c", "3d_cascade_fullres",
         "-prev_stage_predictions", str(out / "expected_lowres"), *common)
    for tag in ("expected", "expected_lowres"):
        for extra in ("plans.json", "dataset.json", "predict_from_raw_data_args.json"):
            (out / tag / extra).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="hippo_3d,hippo_2d,aniso,regions,resenc,ct,cascade")
    order = parser.parse_args().only.split(",")
    install_trainer()
    hippo_done = False
    for name in order:
        if name in ("hippo_3d", "hippo_2d", "resenc"):
            if not hippo_done:
                make_hippo(set(order))
                hippo_done = True
        else:
            {"aniso": make_aniso, "regions": make_regions, "ct": make_ct, "cascade": make_cascade}[name]()


if __name__ == "__main__":
    main()
