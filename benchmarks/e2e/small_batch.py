"""Section (a): a batch of small MR cases, end to end, one fresh process per arm (what a user waits for).

Cases: the first ``--a-cases`` (20) MSD hippocampus scans of ``../shared/data/msd_hippocampus/imagesTr``
(about 35x51x35 voxels, 1 mm). Every arm reads the same files, keeps its default settings (mirroring TTA on)
and writes its label maps to a fresh folder:

- ``medseg_default``: ``medseg predict IN -o OUT`` with the shipped ``stunet_t.hippocampus``;
- ``medseg_torch_fp32``: the same with ``--backend torch --precision fp32``;
- ``medseg_bf16``: the same with ``--precision bf16`` (OpenVINO bf16, TTA kept; outside the accuracy guard,
  so not a default: it shows what halving the window compute gives);
- ``nnunet``: nnU-Net v2's ``nnUNetPredictor`` (the peer venv's nnunetv2, default settings, cases one after
  the other in one process: ``predict_from_files_sequential``) on an nnU-Net v2 result folder
  trained on these scans with nnunetv2 (``tests/nnunet/fixtures/hippo_3d/model``, fold 0; a small network,
  so this pair measures per-case overhead more than convolutions);
- ``medseg_nnunet``: ``medseg predict IN -o OUT --model <that folder> --folds 0``: the same network in medseg.

Reported per arm: process wall seconds / cases (start-up included), CPU seconds / cases (user + system of the
process tree), and for medseg the mean per-case time its sidecars record (start-up and model load excluded),
the mean of each stage the sidecars time, and ``fixed_s``: process wall minus the sum of the cases' times
(imports, model load, compiled-model import, the run-time accuracy guard's PyTorch pass: paid once per run).
Labels: the worst per-case Dice of ``medseg_default`` against ``medseg_torch_fp32`` and of ``medseg_nnunet``
against ``nnunet``.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "msd_hippocampus" / "imagesTr"
FOLDER = ROOT / "tests" / "nnunet" / "fixtures" / "hippo_3d" / "model"
ARMS = ("medseg_default", "nnunet", "medseg_nnunet", "medseg_torch_fp32", "medseg_bf16")
# nnU-Net v2's predictor with its defaults (Gaussian, step 0.5, mirroring), cases one after the other in one
# process: nnUNetv2_predict_from_modelfolder's worker processes stalled for minutes on this loaded 2-core VM
NNUNET_SEQUENTIAL = """
import os, sys, torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
os.makedirs(sys.argv[3], exist_ok=True)
p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True, device=torch.device("cpu"),
                    verbose=False, verbose_preprocessing=False, allow_tqdm=False)
p.initialize_from_trained_model_folder(sys.argv[1], use_folds=(0,), checkpoint_name="checkpoint_final.pth")
p.predict_from_files_sequential(sys.argv[2], sys.argv[3], save_probabilities=False, overwrite=True,
                                folder_with_segs_from_prev_stage=None)
"""


def add_arguments(parser) -> None:
    parser.add_argument("--a-cases", type=int, default=20, help="section a: number of hippocampus cases")
    parser.add_argument("--a-nnunet-cases", type=int, default=None,
                        help="section a: cases for the two arms on the nnU-Net folder (default: --a-cases); "
                             "nnU-Net's predictor can take minutes per case on a loaded 2-core machine")
    parser.add_argument("--a-arms", default=",".join(ARMS), help=f"section a: arms to run ({', '.join(ARMS)})")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Wall and CPU seconds of ``command`` (a fresh process; CPU time of the whole tree once it exits)."""
    cpu0, start = _children_cpu(), time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
    return {"rc": rc, "wall_s": wall, "cpu_s": cpu, "last_line": tail[0][:200]}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    classes = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
    if not classes:
        return 1.0
    return float(min(2 * np.sum((a == c) & (b == c)) / max(1, np.sum(a == c) + np.sum(b == c)) for c in classes))


def worst_dice(left: Path, right: Path) -> float | None:
    """The lowest per-class Dice over cases present in both folders (None when none is)."""
    import nibabel as nib

    scores = []
    for path in sorted(left.glob("*.nii.gz")):
        other = right / path.name
        if other.is_file():
            scores.append(_dice(np.asarray(nib.load(path).dataobj), np.asarray(nib.load(other).dataobj)))
    return min(scores) if scores else None


def truth_dice(folder: Path) -> dict[str, float] | None:
    """Mean Dice per label (1 anterior, 2 posterior) of a folder's label maps against ``labelsTr``."""
    import nibabel as nib

    scores: dict[int, list[float]] = {1: [], 2: []}
    for path in sorted(folder.glob("*.nii.gz")):
        truth = DATA.parent / "labelsTr" / path.name
        if not truth.is_file():
            continue
        a, b = np.asarray(nib.load(path).dataobj), np.asarray(nib.load(truth).dataobj)
        for c in scores:
            scores[c].append(2 * np.sum((a == c) & (b == c)) / max(1, np.sum(a == c) + np.sum(b == c)))
    return {str(c): float(np.mean(v)) for c, v in scores.items()} if scores[1] else None


def sidecars(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if not p.name.endswith("_stats.json")]


def sidecar_seconds(folder: Path) -> float | None:
    values = [r.get("duration_s") for r in sidecars(folder)]
    values = [v for v in values if isinstance(v, (int, float))]
    return float(np.mean(values)) if values else None


def sidecar_stages(folder: Path) -> dict[str, float]:
    """Mean seconds per case of each stage the sidecars time (preprocess, inference, restore, ...) and of
    everything outside the windows (``outside_windows_s``: the case's time minus ``inference_s``)."""
    records = [r for r in sidecars(folder) if r.get("timings_s")]
    stages = {k: float(np.mean([r["timings_s"].get(k, 0.0) for r in records])) for k in records[0]["timings_s"]} \
        if records else {}
    if records:
        stages["outside_windows_s"] = float(np.mean([r["duration_s"] - r["timings_s"].get("inference_s", 0.0)
                                                     for r in records]))
        stages["backend"] = records[-1].get("run", {}).get("backend")
    return stages


def run(args) -> dict:
    if not DATA.is_dir():
        print(f"section a: {DATA} is missing, skipped", flush=True)
        return {"skipped": f"{DATA} missing"}
    scans = sorted(DATA.glob("hippocampus_*.nii.gz"))[: args.a_cases]
    arms = [a for a in args.a_arms.split(",") if a]
    peer_bin = Path(args.peer_python).parent
    work = Path(tempfile.mkdtemp(prefix="medseg_e2e_a_"))
    try:
        plain, named = work / "in", work / "in_0000"   # nnU-Net wants CASE_0000.nii.gz
        plain.mkdir()
        named.mkdir()
        folder_cases = scans[: args.a_nnunet_cases or len(scans)]
        for scan in scans:
            (plain / scan.name).symlink_to(scan)
        for scan in folder_cases:
            (named / scan.name.replace(".nii.gz", "_0000.nii.gz")).symlink_to(scan)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "nnUNet_raw": str(work), "nnUNet_preprocessed": str(work),
               "nnUNet_results": str(work)}
        medseg = [sys.executable, "-m", "medseg", "predict"]
        commands = {
            "medseg_default": [*medseg, str(plain), "-o", str(work / "medseg_default")],
            "medseg_torch_fp32": [*medseg, str(plain), "-o", str(work / "medseg_torch_fp32"),
                                  "--backend", "torch", "--precision", "fp32"],
            "medseg_bf16": [*medseg, str(plain), "-o", str(work / "medseg_bf16"), "--precision", "bf16"],
            "nnunet": [str(args.peer_python), "-c", NNUNET_SEQUENTIAL, str(FOLDER), str(named), str(work / "nnunet")],
            "medseg_nnunet": [*medseg, str(named), "-o", str(work / "medseg_nnunet"), "--model", str(FOLDER),
                              "--folds", "0"],
        }
        results: dict = {"cases": len(scans), "nnunet_folder_cases": len(folder_cases), "arms": {}}
        for arm in arms:
            if arm == "nnunet" and not Path(args.peer_python).is_file():
                results["arms"][arm] = {"skipped": f"{args.peer_python} not found (--peer-python)"}
                print(f"  {arm}: skipped, no nnunetv2 at {peer_bin}", flush=True)
                continue
            if arm in ("nnunet", "medseg_nnunet") and not FOLDER.is_dir():
                results["arms"][arm] = {"skipped": f"{FOLDER} missing"}
                continue
            r = timed(commands[arm], env, work / f"{arm}.log")
            n = len(folder_cases) if arm in ("nnunet", "medseg_nnunet") else len(scans)
            r["cases"], r["s_per_case"], r["cpu_s_per_case"] = n, r["wall_s"] / n, r["cpu_s"] / n
            if arm.startswith("medseg"):
                r["sidecar_s_per_case"] = sidecar_seconds(work / arm)
                r["stages"] = sidecar_stages(work / arm)
                durations = [c.get("duration_s") or 0.0 for c in sidecars(work / arm)]
                r["fixed_s"] = r["wall_s"] - float(sum(durations))
                r["dice_vs_truth"] = truth_dice(work / arm)
            results["arms"][arm] = r
            print(f"  {arm}: {r['s_per_case']:.2f} s/case wall, {r['cpu_s_per_case']:.2f} s/case CPU"
                  + (f", {r['sidecar_s_per_case']:.2f} s/case in the sidecars, {r['fixed_s']:.1f} s once per run"
                     if r.get("sidecar_s_per_case") else "")
                  + ("" if r["rc"] == 0 else f"  (exit {r['rc']}: {r['last_line']})"), flush=True)
        got = results["arms"]

        def ratio(slow: str, fast: str, key: str = "s_per_case") -> float | None:
            if key in got.get(slow, {}) and key in got.get(fast, {}) and got[fast][key] > 0:
                return got[slow][key] / got[fast][key]
            return None

        results["default_vs_torch_fp32"] = ratio("medseg_torch_fp32", "medseg_default")
        results["default_vs_torch_fp32_cpu"] = ratio("medseg_torch_fp32", "medseg_default", "cpu_s_per_case")
        results["medseg_vs_nnunet_same_folder"] = ratio("nnunet", "medseg_nnunet")
        results["medseg_default_vs_nnunet"] = ratio("nnunet", "medseg_default")
        results["worst_dice_default_vs_torch_fp32"] = worst_dice(work / "medseg_default", work / "medseg_torch_fp32")
        results["worst_dice_bf16_vs_torch_fp32"] = worst_dice(work / "medseg_bf16", work / "medseg_torch_fp32")
        results["default_vs_bf16"] = ratio("medseg_default", "medseg_bf16")
        results["worst_dice_medseg_vs_nnunet_folder"] = worst_dice(work / "medseg_nnunet", work / "nnunet")
        default = got.get("medseg_default", {}).get("s_per_case")
        print(f"  goals: <= 0.4 s/case: {default and f'{default:.2f}'}; >= 2x torch fp32: "
              f"{_x(results['default_vs_torch_fp32'])}; >= 3x nnU-Net per case (same folder): "
              f"{_x(results['medseg_vs_nnunet_same_folder'])}", flush=True)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"
