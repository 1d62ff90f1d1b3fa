"""CPU inference backends vs PyTorch fp32, in one run: speed, peak memory, export time and label agreement.

    python benchmarks/bench_backends.py [--data ../shared/data/msd_hippocampus] [--cases 10] [--threads 1]
        [--weights PATH] [--arms torch:fp32,torch:bf16,openvino:fp32,openvino:bf16,onnxruntime:fp32]
        [--held-out] [--skip-window] [--skip-cases] [--modes] [--predict] [--json results.json]

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
  modes   (--modes) OpenVINO fp32 latency vs throughput mode (``get_predictor(mode=...)``): windows/s on
          batches of --mode-batch windows, the two modes alternating --mode-rounds times in one process, for
          the shipped model's 40x56x40 window and a STU-Net-B window (--big-roi, random weights).
  predict (--predict) end to end with medseg's own Predictor and its default settings (8-pass mirror TTA):
          read, preprocess, windows, stitch, restore; arms torch:fp32, openvino:fp32, openvino:int8.
The arm ``openvino:int8`` is NNCF post-training quantisation calibrated on 8 cases of the shipped model's
*training* split (``medseg.backends.calibration.training_cases``); it is measured with the accuracy guard
off (``guard_dice=0``) and reports what the guard saw on the calibration windows. ``--held-out`` takes the
cases from the model's validation split (never used for calibration) instead of the first --cases.
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


def _int8_calibration(model):
    """The shipped model's calibration set: 8 cases of its training split (None for other models)."""
    from medseg.backends import calibration
    from medseg.inference.model_loading import load_model

    _, card, info = load_model("stunet_t.hippocampus")
    files = calibration.training_cases(info.weights_file)
    if not files:
        raise SystemExit("openvino:int8 needs the shipped model's training cases under ../shared/data")
    return calibration.from_files(files, getattr(model, "card", card))


def _predictor(model, arm: str, roi, cache: Path, threads: int):
    from medseg.backends import get_predictor

    backend, precision = arm.split(":")
    extra = {"calibration": _int8_calibration(model), "guard_dice": 0.0} if precision == "int8" else {}
    start = time.perf_counter()
    predictor = get_predictor(model, backend=backend, precision=precision, roi_size=roi, batch_size=1,
                              cache_dir=cache, threads=threads, device="cpu", **extra)
    build = time.perf_counter() - start
    start = time.perf_counter()
    get_predictor(model, backend=backend, precision=precision, roi_size=roi, batch_size=1, cache_dir=cache,
                  threads=threads, device="cpu", **extra)
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


def case_paths(data: Path, count: int, held_out: bool = False) -> list[Path]:
    """The first ``count`` cases, or (``held_out``) ``count`` of the shipped model's validation cases."""
    paths = sorted((data / "imagesTr").glob("hippocampus_*.nii.gz"))
    if held_out:
        from medseg.backends.calibration import training_cases
        from medseg.inference.model_loading import load_model

        train = {p.name for p in training_cases(load_model("stunet_t.hippocampus")[2].weights_file)}
        paths = [p for p in paths if p.name not in train]
    return paths[:count]


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


def worker_cases(arm: str, out: Path, threads: int, data: Path, count: int, weights: str | None,
                 held_out: bool = False) -> dict:
    from monai.inferers import sliding_window_inference

    from medseg.io import read_image

    model, name = shipped_model(weights)
    predictor, build, load = _predictor(model, arm, HIPPO_ROI, out / f"cache_cases_{arm.replace(':', '_')}", threads)
    predictor(torch.zeros(1, 1, *HIPPO_ROI))  # warm-up
    labels, counted = {}, {"windows": 0, "seconds": 0.0}

    def timed(x):  # the backend call alone: windows per second
        t0 = time.perf_counter()
        result = predictor(x)
        counted["windows"] += x.shape[0]
        counted["seconds"] += time.perf_counter() - t0
        return result

    start = time.perf_counter()
    for path in case_paths(data, count, held_out):
        image = torch.as_tensor(np.asarray(read_image(path)), dtype=torch.float32)
        image = (image - image.mean()) / image.std().clamp_min(1e-8)
        logits = sliding_window_inference(image[None], HIPPO_ROI, 1, timed, overlap=0.5, mode="gaussian")
        labels[path.name] = torch.as_tensor(logits).argmax(1)[0].numpy().astype(np.uint8)
    seconds = time.perf_counter() - start
    np.savez_compressed(out / f"cases_{arm.replace(':', '_')}.npz", **labels)
    return {"seconds": seconds, "build_s": build, "load_s": load, "peak_rss_mb": _peak_rss_mb(), "model": name,
            "windows_per_s": counted["windows"] / counted["seconds"],
            "guard": getattr(predictor, "guard", None)}


def worker_modes(out: Path, threads: int, batch: int, rounds: int, big_roi: tuple[int, ...]) -> dict:
    """OpenVINO fp32 latency vs throughput mode, alternating in one process (paired under load)."""
    from medseg.backends import get_predictor
    from medseg.models import create_model

    results = {}
    torch.manual_seed(0)
    for label, model, roi in (("stunet_t.hippocampus 40x56x40", shipped_model(None)[0], HIPPO_ROI),
                              (f"stunet_b {'x'.join(map(str, big_roi))} (random weights)",
                               create_model("stunet_b").eval(), big_roi)):
        x = torch.randn(batch, 1, *roi, generator=torch.Generator().manual_seed(1))
        predictors = {mode: get_predictor(model, backend="openvino", precision="fp32", roi_size=roi,
                                          cache_dir=out / "cache_modes", threads=threads, mode=mode)
                      for mode in ("latency", "throughput")}
        times: dict[str, list[float]] = {mode: [] for mode in predictors}
        outputs = {mode: p(x) for mode, p in predictors.items()}  # warm-up (and the throughput queue)
        for _ in range(rounds):
            for mode, predictor in predictors.items():
                start = time.perf_counter()
                predictor(x)
                times[mode].append(time.perf_counter() - start)
        results[label] = {mode: {"windows_per_s": batch / float(np.median(t)), "seconds": t}
                          for mode, t in times.items()}
        results[label]["max_abs_diff"] = float((outputs["latency"] - outputs["throughput"]).abs().max())
        print(f"  modes  {label}: " + ", ".join(f"{m} {r['windows_per_s']:.3f} windows/s" for m, r in
              results[label].items() if isinstance(r, dict)), file=sys.stderr, flush=True)
    return {"modes": results, "batch": batch, "rounds": rounds, "threads": threads}


def worker_predict(arm: str, out: Path, threads: int, data: Path, count: int, held_out: bool) -> dict:
    """End to end with medseg's Predictor (default settings: mirror TTA, overlap 0.5) on one arm."""
    from medseg.backends import compare_label_maps, get_predictor
    from medseg.inference.model_loading import load_model
    from medseg.inference.predictor import PredictOptions, Predictor
    from medseg.io import read_image

    net, card, info = load_model("stunet_t.hippocampus")
    predictor = Predictor(net, card, PredictOptions(threads=threads), info)
    backend, precision = arm.split(":")
    start = time.perf_counter()
    if arm != "torch:fp32":
        extra = {"calibration": _int8_calibration(net), "guard_dice": 0.0} if precision == "int8" else {}
        predictor.cpu_network = get_predictor(net, backend=backend, precision=precision, roi_size=card.roi_size,
                                              cache_dir=out / f"cache_predict_{arm.replace(':', '_')}",
                                              threads=threads, device="cpu", **extra)
    build = time.perf_counter() - start
    labels, start = {}, time.perf_counter()
    for path in case_paths(data, count, held_out):
        labels[path.name] = predictor.predict(read_image(path)).labels[0].numpy().astype(np.uint8)
    seconds = time.perf_counter() - start
    truth = {name: np.asarray(read_image(data / "labelsTr" / name))[0] for name in labels}
    dice = [compare_label_maps(labels[n], truth[n].astype(np.uint8), labels=(1, 2)).dice for n in labels]
    np.savez_compressed(out / f"predict_{arm.replace(':', '_')}.npz", **labels)
    return {"seconds": seconds, "build_s": build, "load_s": 0.0, "peak_rss_mb": _peak_rss_mb(),
            "model": "stunet_t.hippocampus, medseg Predictor defaults (TTA 8 passes)",
            "dice_vs_truth": {k: float(np.mean([d[k] for d in dice])) for k in (1, 2)},
            "guard": getattr(predictor.cpu_network, "guard", None)}


def run_arm(workload: str, arm: str, args, out: Path) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", workload, "--arm", arm, "--out", str(out),
           "--threads", str(args.threads), "--repeats", str(args.repeats), "--cases", str(args.cases),
           "--data", str(args.data), "--mode-batch", str(args.mode_batch), "--mode-rounds", str(args.mode_rounds),
           "--big-roi", args.big_roi] + (["--weights", args.weights] if args.weights else []) \
        + (["--held-out"] if args.held_out else [])
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {workload} {arm}: FAILED\n{proc.stderr[-1500:]}{proc.stdout[-500:]}", file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if workload == "modes":
        print("\n".join(line for line in proc.stderr.splitlines() if line.startswith("  modes")), flush=True)
        return result
    print(f"  {workload:6s} {arm:17s} {result['seconds']:7.2f} s  build {result['build_s']:5.1f} s  "
          f"load {result['load_s']:4.2f} s  peak RSS {result['peak_rss_mb']:5.0f} MB", flush=True)
    return result


def window_agreement(out: Path, arm: str) -> dict:
    from medseg.backends import compare_label_maps

    ref = np.load(out / "window_torch_fp32.npy")
    got = np.load(out / f"window_{arm.replace(':', '_')}.npy")
    agreement = compare_label_maps(got.argmax(1), ref.argmax(1), include_background=True)
    return {"max_abs_logit_diff": float(np.abs(got - ref).max()), "argmax_agreement": 1 - agreement.changed_fraction}


def case_agreement(out: Path, arm: str, prefix: str = "cases") -> dict:
    from medseg.backends import GUARD_DICE, compare_label_maps

    ref = np.load(out / f"{prefix}_torch_fp32.npz")
    got = np.load(out / f"{prefix}_{arm.replace(':', '_')}.npz")
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
        print(f"\n{workload}: {rows['torch:fp32']['model']}, {rows['torch:fp32'].get('cases_n', '')}\n"
              "| arm | s, all cases | speed-up vs torch fp32 | build s | load s | peak RSS MB | min Dice vs fp32 | "
              "cases within guard | mean / max changed voxels | windows/s | int8 guard (calibration windows) |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    for arm, r in rows.items():
        head = (f"| {arm} | {r['seconds']:.2f} | {base['seconds'] / r['seconds']:.2f}x | {r['build_s']:.1f} | "
                f"{r['load_s']:.2f} | {r['peak_rss_mb']:.0f} |")
        if workload == "window":
            print(f"{head} {r['max_abs_logit_diff']:.2g} | {100 * r['argmax_agreement']:.2f}% |")
        else:
            rate = f"{r['windows_per_s']:.2f}" if r.get("windows_per_s") else "-"
            guard = f"min Dice {r['guard']['min_dice']:.4f}" if r.get("guard") else "-"
            if r.get("dice_vs_truth"):
                rate = "Dice vs truth " + " / ".join(f"{v:.4f}" for v in r["dice_vs_truth"].values())
            print(f"{head} {r['min_dice']:.4f} | {r['cases_within_guard']}/{r['cases']} | "
                  f"{100 * r['mean_changed_fraction']:.3f}% / {100 * r['max_changed_fraction']:.3f}% | "
                  f"{rate} | {guard} |")


def report_modes(result: dict | None) -> None:
    if not result:
        return
    print(f"\nOpenVINO fp32, batches of {result['batch']} windows, {result['threads']} threads, median of "
          f"{result['rounds']} alternating rounds\n| model, window | latency windows/s | throughput windows/s | "
          "throughput / latency | max abs logit diff |\n|---|---|---|---|---|")
    for label, r in result["modes"].items():
        lat, thr = r["latency"]["windows_per_s"], r["throughput"]["windows_per_s"]
        print(f"| {label} | {lat:.3f} | {thr:.3f} | {thr / lat:.2f}x | {r['max_abs_diff']:.2g} |")


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
    parser.add_argument("--held-out", action="store_true", help="cases from the shipped model's validation split")
    parser.add_argument("--modes", action="store_true", help="OpenVINO latency vs throughput mode")
    parser.add_argument("--mode-batch", type=int, default=8, help="windows per call in --modes")
    parser.add_argument("--mode-rounds", type=int, default=3, help="alternations of the two modes in --modes")
    parser.add_argument("--big-roi", default="64x64x64", help="STU-Net-B window in --modes")
    parser.add_argument("--predict", action="store_true", help="end to end with medseg's Predictor")
    parser.add_argument("--predict-arms", default="torch:fp32,openvino:fp32,openvino:int8")
    parser.add_argument("--json", type=Path, help="also write all figures here")
    parser.add_argument("--worker", choices=("window", "cases", "modes", "predict"), help=argparse.SUPPRESS)
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker == "window":
        print(json.dumps(worker_window(args.arm, args.out, args.threads, args.repeats)))
        return
    if args.worker == "cases":
        print(json.dumps(worker_cases(args.arm, args.out, args.threads, args.data, args.cases, args.weights,
                                      args.held_out), default=float))
        return
    if args.worker == "modes":
        big = tuple(int(v) for v in args.big_roi.split("x"))
        print(json.dumps(worker_modes(args.out, args.threads, args.mode_batch, args.mode_rounds, big)))
        return
    if args.worker == "predict":
        print(json.dumps(worker_predict(args.arm, args.out, args.threads, args.data, args.cases, args.held_out),
                         default=float))
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
    results: dict = {"threads": args.threads, "cpu_bf16_flags": flags, "window": {}, "cases": {}, "predict": {}}
    with tempfile.TemporaryDirectory(prefix="bench_backends_") as tmp:
        out = Path(tmp)
        if args.modes:
            results["modes"] = run_arm("modes", "openvino:fp32", args, out)
        for workload, skip in (("window", args.skip_window), ("cases", args.skip_cases), ("predict", not args.predict)):
            if skip:
                continue
            for arm in (arms if workload != "predict" else args.predict_arms.split(",")):
                result = run_arm(workload, arm, args, out)
                if result is not None:
                    results[workload][arm] = result
            if "torch:fp32" not in results[workload]:
                continue
            for arm in results[workload]:
                if workload == "window":
                    results[workload][arm].update(window_agreement(out, arm))
                else:
                    results[workload][arm].update(case_agreement(out, arm, workload))
                results[workload][arm]["cases_n"] = f"{args.cases} cases, {args.threads} thread(s)"
    report(results, "window")
    report(results, "cases")
    report(results, "predict")
    report_modes(results.get("modes"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
