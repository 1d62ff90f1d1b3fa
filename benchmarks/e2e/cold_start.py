"""Section (c): cold start, each command in a fresh process, against the peers' ``-h``.

Commands (medseg from this checkout, ``python -m medseg``): ``--help``, ``info FILE``, ``models list``,
``models show stunet_t.hippocampus``, ``convert FILE OUT.nrrd``, ``evaluate LABELS LABELS`` and ``predict --help``,
plus the first prediction (``predict`` of the bundled sample scan: start-up, model load, compiled-model cache,
one case; once with the compiled-model cache filled by an earlier run, once with an empty one), and the first
prediction of the two paths that run without MONAI: an nnU-Net v2 folder (``tests/nnunet/fixtures/hippo_3d``,
fold 0, a held-out case) and ``--model totalsegmentator:total_fast`` on tiny stand-in folders
(``tests/totalseg/_parts.py``, built in the work folder) with a small CT; both networks are tiny, so these rows
are start-up, not inference. Peers: ``nnUNetv2_predict -h`` (``--peer-python``'s venv) and ``TotalSegmentator -h``
(``--totalseg-bin``). Each command runs ``--c-repeats`` times (median wall seconds reported), after one
unmeasured run that warms the file cache; CPU seconds (user + system) are recorded too, the steadier figure
on a shared machine. Also recorded: whether torch / MONAI were imported (from
``python -X importtime``), which is what a light command must avoid.
"""
from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "medseg" / "data" / "sample" / "hippocampus_001.nii.gz"
LABELS = ROOT / "medseg" / "data" / "sample" / "hippocampus_001_label.nii.gz"
NNUNET = ROOT / "tests" / "nnunet" / "fixtures" / "hippo_3d"
GOAL_S = 1.0


def add_arguments(parser) -> None:
    parser.add_argument("--c-repeats", type=int, default=3, help="section c: runs per command (median)")
    parser.add_argument("--c-predict-repeats", type=int, default=None,
                        help="section c: runs of each first-prediction command (default: --c-repeats)")
    parser.add_argument("--totalseg-bin", default="/work/venv-totalseg/bin/TotalSegmentator",
                        help="section c: the TotalSegmentator script of a venv that has it")


def _totalseg_standins(work: Path) -> Path:
    """Tiny TotalSegmentator stand-in folders under ``work/totalseg_home`` and a small CT; returns the CT."""
    sys.path.insert(0, str(ROOT))
    from tests.totalseg._parts import make_task, write_ct

    make_task(work / "totalseg_home", "total_fast")
    return write_ct(work / "ct.nii.gz")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(command: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, exit code and CPU seconds (user + system) of a fresh process."""
    start, cpu = time.perf_counter(), _cpu()
    rc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env).returncode
    return time.perf_counter() - start, rc, _cpu() - cpu


def _imports(command: list[str], env: dict[str, str]) -> list[str]:
    """Heavy packages a ``python -m medseg ...`` command imports (from ``-X importtime``)."""
    done = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, env=env)
    names = {line.split("|")[-1].strip() for line in done.stderr.decode(errors="replace").splitlines()
             if line.startswith("import time:")}
    return [m for m in ("torch", "monai", "SimpleITK", "scipy") if m in names]


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="medseg_e2e_c_"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    labels = LABELS if LABELS.is_file() else SAMPLE
    medseg = [sys.executable, "-m", "medseg"]
    nnunet_case = NNUNET / "inputs" / "hippocampus_026_0000.nii.gz"
    ct = _totalseg_standins(work)
    env["TOTALSEG_HOME_DIR"] = str(work / "totalseg_home")
    commands = {
        "medseg --help": [*medseg, "--help"],
        "medseg info": [*medseg, "info", str(SAMPLE)],
        "medseg models list": [*medseg, "models", "list"],
        "medseg models show": [*medseg, "models", "show", "stunet_t.hippocampus"],
        "medseg convert": [*medseg, "convert", str(SAMPLE), str(work / "out.nrrd")],
        "medseg evaluate (label maps)": [*medseg, "evaluate", str(labels), str(labels)],
        "medseg predict --help": [*medseg, "predict", "--help"],
        "medseg predict (first prediction)": [*medseg, "predict", str(SAMPLE), "-o", str(work / "seg.nii.gz")],
        "medseg predict (first, empty compiled-model cache)": [*medseg, "predict", str(SAMPLE), "-o",
                                                               str(work / "seg.nii.gz")],
        "medseg predict (first, nnU-Net folder)": [*medseg, "predict", str(nnunet_case), "-o", str(work / "seg.nii.gz"),
                                                   "--model", str(NNUNET / "model"), "--folds", "0"],
        "medseg predict (first, TotalSegmentator stand-ins)": [*medseg, "predict", str(ct), "-o",
                                                               str(work / "seg.nii.gz"), "--model",
                                                               "totalsegmentator:total_fast"],
        "nnUNetv2_predict -h": [str(Path(args.peer_python).parent / "nnUNetv2_predict"), "-h"],
        "TotalSegmentator -h": [str(args.totalseg_bin), "-h"],
    }
    results: dict = {}
    try:
        for name, command in commands.items():
            if not Path(command[0]).is_file():
                results[name] = {"skipped": f"{command[0]} not found"}
                print(f"  {name}: skipped ({command[0]} not found)", flush=True)
                continue
            if name.startswith("medseg convert"):
                (work / "out.nrrd").unlink(missing_ok=True)
            _wall(command, env)   # warm the file cache (and, for predict, the compiled-model cache)
            walls, cpus, codes = [], [], set()
            repeats = args.c_repeats
            if "predict (first" in name and args.c_predict_repeats is not None:
                repeats = args.c_predict_repeats
            for _ in range(max(1, repeats)):
                if "predict (first" in name:
                    (work / "seg.nii.gz").unlink(missing_ok=True)
                    (work / "seg.json").unlink(missing_ok=True)
                run_env = env
                if "empty compiled" in name:   # a fresh cache: the ONNX export and OpenVINO compile happen here
                    run_env = {**env, "MEDSEG_CACHE_DIR": tempfile.mkdtemp(dir=work)}
                seconds, rc, cpu = _wall(command, run_env)
                walls.append(seconds)
                cpus.append(cpu)
                codes.add(rc)
            row = {"median_s": statistics.median(walls), "median_cpu_s": statistics.median(cpus), "runs_s": walls,
                   "exit_codes": sorted(codes)}
            if command[0] == sys.executable:
                row["imports"] = _imports(command, env)
            if not name.startswith("medseg predict (first"):
                row["under_goal"] = row["median_s"] < GOAL_S
            results[name] = row
            print(f"  {name}: {row['median_s']:.2f} s wall, {row['median_cpu_s']:.2f} s CPU (exit {sorted(codes)})"
                  + (f", imports {', '.join(row['imports']) or 'no torch/MONAI'}" if "imports" in row else ""),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"goal_s": GOAL_S, "commands": results, "load_average": os.getloadavg()}
