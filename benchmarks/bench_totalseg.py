"""Wall time and peak RSS of TotalSegmentator vs ``medseg predict --model totalsegmentator`` on one CT.

Real-size stand-in networks with random weights under a temporary ``TOTALSEG_HOME_DIR``: nnU-Net's default
3d_fullres U-Net (6 stages, 32..320 features, two convs per stage, instance norm, leaky ReLU) with the patch
sizes of TotalSegmentator's folders (3 mm model 297: 112x112x128; 1.5 mm parts 291-295: 128^3), 117 classes
over the task's real folder names and label sets. Each arm runs as its own process (TotalSegmentator's
Python API from a peer environment, ``device="cpu"``; medseg's CLI), one after the other; peak RSS is the
largest sum over the process tree (TotalSegmentator's nnU-Net spawns workers), sampled every 0.1 s::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_totalseg.py [--modes fast] [--backend auto] \\
        [--ct ../shared/data/totalsegmentator_example/example_ct.nii.gz] [--peer-python PY]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.totalseg._peer import EXAMPLES, compare, peer_python, prepare_home  # noqa: E402

PATCH = {"total": (128, 128, 128), "total_fast": (112, 112, 128)}


def real_size_plans(config: dict, patch: tuple[int, int, int]) -> None:
    """nnU-Net's default planner output for a CT at isotropic spacing with this patch (in place)."""
    pools = [int(np.log2(p // 4)) for p in patch]  # pool while the axis stays >= 8 voxels (nnU-Net's rule)
    stages = max(pools) + 1
    strides = [[1, 1, 1]] + [[2 if s < pools[a] else 1 for a in range(3)] for s in range(stages - 1)]
    config["patch_size"] = list(patch)
    config["architecture"]["arch_kwargs"].update({
        "n_stages": stages, "features_per_stage": [min(32 * 2 ** i, 320) for i in range(stages)],
        "kernel_sizes": [[3, 3, 3]] * stages, "strides": strides, "n_conv_per_stage": [2] * stages,
        "n_conv_per_stage_decoder": [2] * (stages - 1)})


def build_home(home: Path, mode: str) -> Path:
    """Stand-in folders with real-size random networks for ``mode`` (total or total_fast)."""
    import tests.totalseg._parts as parts

    original = parts.plans

    def sized():
        p = original()
        real_size_plans(p["configurations"]["3d_fullres"], PATCH[mode])
        return p

    parts.plans = sized
    try:
        parts.make_task(home, mode, patch=PATCH[mode])
        # the sharpened random heads of the parity stand-ins are kept; weights otherwise PyTorch's init
    finally:
        parts.plans = original
    return prepare_home(home, tasks=())


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure(cmd: list[str], env: dict, cwd: Path) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS bytes, stderr tail) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return seconds, peak, (out + err)[-500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=EXAMPLES / "example_ct.nii.gz")
    parser.add_argument("--modes", default="fast", help="fast (3 mm, one network) and/or total (1.5 mm, five)")
    parser.add_argument("--backend", default="auto", help="medseg's --backend")
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    python = args.peer_python or peer_python()
    if python is None:
        sys.exit("no python with totalsegmentator found (pass --peer-python or set MEDSEG_TOTALSEG_PYTHON)")
    for mode in args.modes.split(","):
        task = "total_fast" if mode == "fast" else "total"
        with tempfile.TemporaryDirectory(prefix="bench-totalseg-") as tmp:
            home = build_home(Path(tmp) / "home", task)
            theirs, ours = Path(tmp) / "totalseg.nii.gz", Path(tmp) / "medseg.nii.gz"
            env = {**os.environ, "TOTALSEG_HOME_DIR": str(home), "PYTHONPATH": str(home / "shim")}
            for key in ("nnUNet_results", "TOTALSEG_WEIGHTS_PATH"):
                env.pop(key, None)
            spec = json.dumps({"input": str(args.ct), "output": str(theirs), "fast": mode == "fast",
                               "roi_subset": None})
            t_ts, rss_ts, _ = measure([python, str(home / "run_totalseg.py"), spec], env, home)
            env_ms = {**os.environ, "TOTALSEG_HOME_DIR": str(home), "PYTHONPATH": str(ROOT)}
            t_ms, rss_ms, _ = measure([sys.executable, "-m", "medseg", "predict", str(args.ct), "-o", str(ours),
                                       "--model", f"totalsegmentator:{task}", "--backend", args.backend,
                                       "--threads", str(args.threads)], env_ms, ROOT)
            agreement = compare(theirs, ours)
            print(json.dumps({
                "mode": mode, "ct": args.ct.name, "backend": args.backend, "threads": args.threads,
                "totalseg_s": round(t_ts, 1), "medseg_s": round(t_ms, 1), "time_ratio": round(t_ms / t_ts, 3),
                "totalseg_peak_rss_mb": round(rss_ts / 2**20), "medseg_peak_rss_mb": round(rss_ms / 2**20),
                "rss_ratio": round(rss_ms / rss_ts, 3), "agreement": agreement["agreement"],
                "same_names": agreement["same_names"]}), flush=True)


if __name__ == "__main__":
    main()
