"""CPU inference backends vs PyTorch fp32, in one run: speed, peak memory, export time and label agreement.

    python benchmarks/bench_backends.py [--data ../shared/data/msd_hippocampus] [--cases 10] [--threads 1]
        [--weights PATH] [--arms torch:fp32,torch:bf16,openvino:fp32,openvino:bf16,onnxruntime:fp32]
        [--skip-window] [--json results.json]

Two workloads, each arm in its own child process (so peak RSS is per arm) with its own empty cache
(so "build" is the cold ONNX export plus the runtime's compile; "load" is the cached second start):
  window  one 128^3 window of a 5-stage 3D U-Net (MONAI DynUNet, filters 32-64-128-256-320, random
          weights): seconds per forward (best of --repeats after a warm-up), max |logit| difference and
          argmax agreement with torch fp32.
  cases   the shipped hippocampus model (stunet_t; --weights, else create_model("stunet_t.hippocampus"),
          else medseg/data/pretrained/stunet_t_hippocampus.safetensors, else random weights) over the first --cases
          MSD hippocampus cases: read, z-score, MONAI sliding_window_inference (roi 40x56x40, overlap
          0.5, gaussian), argmax. Wall time of the whole loop, and per case and label the Dice between
          the arm's and torch fp32's label maps, plus the fraction of changed voxels (the accuracy guard).
Ratios are torch fp32 time / arm time from the same run.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HIPPO_ROI = (40, 56, 40)
WINDOW = (128, 128, 128)
DEFAULT_ARMS = "torch:fp32,torch:bf16,openvino:fp32,openvino:bf16,onnxruntime:fp32"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _predictor(model, arm: str, roi, cache: Path, threads: int):
    from medseg.backends import get_predictor

    backend, precision = arm.split(":")
    start = time.perf_counter()
    predictor = get_predictor(model, backend=backend, precision=precision, roi_size=roi, batch_size=1,
                              cache_dir=cache, threads=threads, device="cpu")
    build = time.perf_counter() - start
    start = time.perf_counter()
    get_predictor(model, backend=backend, precision=precision, roi_size=roi, batch_size=1, cache_dir=cache,
                  threads=threads, device="cpu")
    load = time.perf_counter() - start
    if predictor.backend != backend or predictor.precision != precision:
        raise SystemExit(f"{arm} fell back to {predictor.describe()}")
    return predictor, build, load


def dynunet() -> torch.nn.Module:
    from monai.networks.nets import DynUNet

    torch.manual_seed(0)
    return DynUNet(3, 1, 2, kernel_size=[3] * 5, strides=[1, 2, 2, 2, 2], upsample_kernel_size=[2] * 4,
                   filters=[32, 64, 128, 256, 320]).eval()


def shipped_model(weights: str | None) -> tuple[torch.nn.Module, str]:
    from medseg.core.errors import MedsegError
    from medseg.models import create_model

    if weights:
        return create_model("stunet_t", pretrained=weights).eval(), f"stunet_t + {Path(weights).name}"
    try:
        return create_model("stunet_t.hippocampus").eval(), "stunet_t.hippocampus (shipped)"
    except MedsegError:
        pass
    file = ROOT / "medseg" / "data" / "pretrained" / "stunet_t_hippocampus.safetensors"
    if file.is_file():
        return create_model("stunet_t", pretrained=str(file)).eval(), f"stunet_t + {file.name}"
    torch.manual_seed(0)
    return create_model("stunet_t").eval(), "stunet_t, RANDOM weights (no trained weights found)"


def case_paths(data: Path, count: int) -> list[Path]:
    return sorted((data / "imagesTr").glob("hippocampus_*.nii.gz"))[:count]


def worker_window(arm: str, out: Path, threads: int, repeats: int) -> dict:
    model = dynunet()
    x = torch.randn(1, 1, *WINDOW, generator=torch.Generator().manual_seed(1))
    predictor, build, load = _predictor(model, arm, WINDOW, out / f"cache_window_{arm.replace(':', '_')}", threads)
    predictor(x)  # warm-up (first-inference allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        logits = predictor(x)
        times.append(time.perf_counter() - start)
    np.save(out / f"window_{arm.replace(':', '_')}.npy", logits.numpy())
    return {"seconds": min(times), "build_s": build, "load_s": load, "peak_rss_mb": _peak_rss_mb()}


def worker_cases(arm: str, out: Path, threads: int, data: Path, count: int, weights: str | None) -> dict:
    from monai.inferers import sliding_window_inference

    from medseg.io import read_image

    model, name = shipped_model(weights)
    predictor, build, load = _predictor(model, arm, HIPPO_ROI, out / f"cache_cases_{arm.replace(':', '_')}", threads)
    predictor(torch.zeros(1, 1, *HIPPO_ROI))  # warm-up
    labels = {}
    start = time.perf_counter()
    for path in case_paths(data, count):
        image = torch.as_tensor(np.asarray(read_image(path)), dtype=torch.float32)
        image = (image - image.mean()) / image.std().clamp_min(1e-8)
        logits = sliding_window_inference(image[None], HIPPO_ROI, 1, predictor, overlap=0.5, mode="gaussian")
        labels[path.name] = torch.as_tensor(logits).argmax(1)[0].numpy().astype(np.uint8)
    seconds = time.perf_counter() - start
    np.savez_compressed(out / f"cases_{arm.replace(':', '_')}.npz", **labels)
    return {"seconds": seconds, "build_s": build, "load_s": load, "peak_rss_mb": _peak_rss_mb(), "model": name}


def run_arm(workload: str, arm: str, args, out: Path) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", workload, "--arm", arm, "--out", str(out),
           "--threads", str(args.threads), "--repeats", str(args.repeats), "--cases", str(args.cases),
           "--data", str(args.data)] + (["--weights", args.weights] if args.weights else [])
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {workload} {arm}: FAILED\n{proc.stderr[-1500:]}{proc.stdout[-500:]}", file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"  {workload:6s} {arm:17s} {result['seconds']:7.2f} s  build {result['build_s']:5.1f} s  "
          f"load {result['load_s']:4.2f} s  peak RSS {result['peak_rss_mb']:5.0f} MB", flush=True)
    return result


def window_agreement(out: Path, arm: str) -> dict:
    from medseg.backends import compare_label_maps

    ref = np.load(out / "window_torch_fp32.npy")
    got = np.load(out / f"window_{arm.replace(':', '_')}.npy")
    agreement = compare_label_maps(got.argmax(1), ref.argmax(1), include_background=True)
    return {"max_abs_logit_diff": float(np.abs(got - ref).max()), "argmax_agreement": 1 - agreement.changed_fraction}


def case_agreement(out: Path, arm: str) -> dict:
    from medseg.backends import GUARD_DICE, compare_label_maps

    ref = np.load(out / "cases_torch_fp32.npz")
    got = np.load(out / f"cases_{arm.replace(':', '_')}.npz")
    per_case = {name: compare_label_maps(got[name], ref[name], labels=(1, 2)) for name in ref.files}
    return {
        "min_dice": min(a.min_dice for a in per_case.values()),
        "mean_changed_fraction": float(np.mean([a.changed_fraction for a in per_case.values()])),
        "max_changed_fraction": max(a.changed_fraction for a in per_case.values()),
        "cases_within_guard": sum(a.passes(GUARD_DICE) for a in per_case.values()),
        "cases": len(per_case),
        "per_case": {n: {"dice": a.dice, "changed": a.changed_fraction} for n, a in per_case.items()},
    }


def report(results: dict, workload: str) -> None:
    rows = results.get(workload, {})
    base = rows.get("torch:fp32")
    if not rows or base is None:
        return
    if workload == "window":
        print("\n| arm | s / 128^3 window | speed-up vs torch fp32 | build s | load s | peak RSS MB | "
              "max abs logit diff | argmax agreement |\n|---|---|---|---|---|---|---|---|")
    else:
        print(f"\n{rows['torch:fp32']['model']}, {rows['torch:fp32'].get('cases_n', '')}\n"
              "| arm | s, all cases | speed-up vs torch fp32 | build s | load s | peak RSS MB | min Dice vs fp32 | "
              "cases within guard | mean / max changed voxels |\n|---|---|---|---|---|---|---|---|---|")
    for arm, r in rows.items():
        head = (f"| {arm} | {r['seconds']:.2f} | {base['seconds'] / r['seconds']:.2f}x | {r['build_s']:.1f} | "
                f"{r['load_s']:.2f} | {r['peak_rss_mb']:.0f} |")
        if workload == "window":
            print(f"{head} {r['max_abs_logit_diff']:.2g} | {100 * r['argmax_agreement']:.2f}% |")
        else:
            print(f"{head} {r['min_dice']:.4f} | {r['cases_within_guard']}/{r['cases']} | "
                  f"{100 * r['mean_changed_fraction']:.3f}% / {100 * r['max_changed_fraction']:.3f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "msd_hippocampus")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="timed 128^3 forwards per arm (best is kept)")
    parser.add_argument("--weights", help="trained stunet_t weights (.safetensors or a training checkpoint)")
    parser.add_argument("--arms", default=DEFAULT_ARMS)
    parser.add_argument("--skip-window", action="store_true")
    parser.add_argument("--skip-cases", action="store_true")
    parser.add_argument("--json", type=Path, help="also write all figures here")
    parser.add_argument("--worker", choices=("window", "cases"), help=argparse.SUPPRESS)
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker == "window":
        print(json.dumps(worker_window(args.arm, args.out, args.threads, args.repeats)))
        return
    if args.worker == "cases":
        print(json.dumps(worker_cases(args.arm, args.out, args.threads, args.data, args.cases, args.weights)))
        return

    from medseg.backends import available_backends, cpu_supports_bf16
    from medseg.backends.availability import cpu_flags, library_versions

    arms = [a for a in args.arms.split(",") if a.split(":")[0] in available_backends()]
    if "torch:fp32" not in arms:
        arms.insert(0, "torch:fp32")
    arms.remove("torch:fp32")
    arms.insert(0, "torch:fp32")   # the reference runs first
    flags = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx"))
    print(f"CPU bf16: {cpu_supports_bf16()} (flags: {', '.join(flags) or 'none'}); threads {args.threads}; "
          f"versions {library_versions('openvino') | library_versions('onnxruntime')}")
    results: dict = {"threads": args.threads, "cpu_bf16_flags": flags, "window": {}, "cases": {}}
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        out = Path(tmp)
        for workload, skip in (("window", args.skip_window), ("cases", args.skip_cases)):
            if skip:
                continue
            for arm in arms:
                result = run_arm(workload, arm, args, out)
                if result is not None:
                    results[workload][arm] = result
            if "torch:fp32" not in results[workload]:
                continue
            for arm in results[workload]:
                agreement = window_agreement if workload == "window" else case_agreement
                results[workload][arm].update(agreement(out, arm))
                results[workload][arm]["cases_n"] = f"{args.cases} cases, {args.threads} thread(s)"
    report(results, "window")
    report(results, "cases")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
