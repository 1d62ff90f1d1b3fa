"""Benchmark ``medseg predict`` against MONAI's ``sliding_window_inference`` in the same process.

Sections (all by default; pick with ``--sections``):

- ``overhead``: same network, window, overlap, Gaussian blending and batch size. Ratios of
  (1) medseg's engine and (2) medseg's whole ``Predictor.predict`` (checks, z-score, engine, mapping back)
  to MONAI ``sliding_window_inference`` + argmax. Goal: <= 1.05.
- ``rss``: peak resident memory of a fresh process running the whole file pipeline (read, predict, write,
  re-read check, stats) with a 105-class single-convolution network on a 512x512x600 CT
  (0.8 x 0.8 x 1.5 mm, model spacing 1.5 mm, window 128^3). Goal: < 8 GB.
- ``nnunet``: medseg's engine vs nnU-Net v2's ``nnUNetPredictor.predict_sliding_window_return_logits`` (+ argmax)
  with the same network, window, step 0.5, Gaussian and mirroring setting, one window at a time as nnU-Net
  does. Needs ``nnunetv2`` importable (run this section with an environment that has it).
- ``throughput``: input voxels per second of ``Predictor.predict`` on the chosen device.

``--clock cpu`` times with ``time.process_time`` (CPU seconds of this process), which keeps ratios
meaningful on a shared, busy machine when run with one thread.

Examples::

    python benchmarks/bench_predict.py                       # CPU, all sections
    python benchmarks/bench_predict.py --sections overhead --device cuda --model stunet_s
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medseg.core.card import Intensity, ModelCard
from medseg.inference.predictor import PredictOptions, Predictor
from medseg.inference.sliding_window import (
    EngineOptions,
    sliding_window_labels,
    window_network,
)
from medseg.inference.windows import window_starts

CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(runs: dict, device: str, repeats: int) -> dict:
    """Median seconds per run, runs interleaved after one warm-up each."""
    times = {k: [] for k in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeats):
        for key, fn in runs.items():
            _sync(device)
            t = clock()
            fn()
            _sync(device)
            times[key].append(clock() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _conv105() -> torch.nn.Module:
    """A 105-class network that costs almost nothing, so the engine's own cost shows."""
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 105, 1)
    model.card = ModelCard(name="conv105", spatial_dims=3, in_channels=1, out_channels=105,
                           labels=("background",) + tuple(f"class_{i}" for i in range(1, 105)),
                           roi_size=(128, 128, 128), spacing=(1.5, 1.5, 1.5),
                           intensity=Intensity("ct", -1000, 1000), modality="CT")
    return model


def _network(name: str, device: str):
    import medseg

    model = (_conv105() if name == "conv105" else medseg.create_model(name)).eval().to(device)
    card = model.card.replace(spacing=None, orientation=None, intensity=Intensity("zscore"), modality="any")
    model.card = card
    return model, card


def _monai_positions(size, roi, overlap):
    out = []
    for n, r in zip(size, roi):
        interval = max(int(r * (1 - overlap)), 1)
        out.append(int(np.ceil(max(n - r, 0) / interval)) + 1)
    return int(np.prod(out))


def overhead(device: str, model_name: str, size, batch: int, repeats: int) -> dict:
    """Engine and full predict vs MONAI SWI + argmax (interleaved runs, medians)."""
    model, card = _network(model_name, device)
    roi = tuple(card.roi_size)
    overlap = 0.5
    ours = int(np.prod([len(window_starts(n, r, overlap)) for n, r in zip(size, roi)]))
    theirs = _monai_positions(size, roi, overlap)
    rng = np.random.default_rng(0)
    raw = rng.normal(100, 20, size).astype(np.float32)
    normalised = torch.from_numpy((raw - raw.mean()) / raw.std())[None]
    image = MetaTensor(torch.from_numpy(raw)[None], affine=torch.eye(4, dtype=torch.float64))
    amp = device.startswith("cuda")
    net = window_network(model, spatial_dims=3)
    predictor = Predictor(model, card, PredictOptions(device=device, tta=False, batch_size=batch, amp=amp))
    options = EngineOptions(roi=roi, overlap=overlap, batch_size=batch, compute_device=device,
                            stitch_device=device, amp=amp, channels_last=False)

    def monai_run():
        x = normalised.to(device)[None]
        with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=amp):
            logits = sliding_window_inference(x, roi, batch, model, overlap=overlap, mode="gaussian",
                                              sigma_scale=0.125)
            labels = logits.argmax(1).to(torch.uint8).cpu()
        return labels

    def engine_run():
        return sliding_window_labels(normalised, net, channels=card.out_channels, activation="softmax",
                                     options=options).labels

    def predict_run():
        return predictor.predict(image).labels

    med = _timed({"monai": monai_run, "engine": engine_run, "predict": predict_run}, device, repeats)
    agree = float((engine_run() == monai_run()).float().mean())
    return {"section": "overhead", "device": device, "model": model_name, "size": list(size), "roi": list(roi),
            "windows_medseg": ours, "windows_monai": theirs, "batch": batch,
            "monai_s": round(med["monai"], 3), "engine_s": round(med["engine"], 3),
            "predict_s": round(med["predict"], 3),
            "engine_ratio": round(med["engine"] / med["monai"], 3),
            "predict_ratio": round(med["predict"] / med["monai"], 3), "label_agreement": round(agree, 5)}


def nnunet(device: str, model_name: str, size, repeats: int, tta: bool) -> dict:
    """medseg engine vs nnU-Net v2's sliding-window predictor, same network and settings, batch 1."""
    from types import SimpleNamespace

    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    model, card = _network(model_name, device)
    roi = tuple(card.roi_size)
    theirs = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                             perform_everything_on_device=device != "cpu", device=torch.device(device),
                             verbose=False, allow_tqdm=False)
    theirs.network = model
    theirs.configuration_manager = SimpleNamespace(patch_size=list(roi), previous_stage_name=None)
    theirs.label_manager = SimpleNamespace(num_segmentation_heads=card.out_channels)
    theirs.allowed_mirroring_axes = (0, 1, 2)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 1, size).astype(np.float32))[None]
    amp = device.startswith("cuda")
    options = EngineOptions(roi=roi, overlap=0.5, batch_size=1, compute_device=device, stitch_device=device,
                            amp=amp, mirror_axes=(0, 1, 2) if tta else ())
    net = window_network(model, spatial_dims=3)

    def nnunet_run():
        return theirs.predict_sliding_window_return_logits(x).argmax(0).to(torch.uint8).cpu()

    def engine_run():
        return sliding_window_labels(x, net, channels=card.out_channels, activation="softmax",
                                     options=options).labels

    med = _timed({"nnunet": nnunet_run, "engine": engine_run}, device, repeats)
    agree = float((engine_run() == nnunet_run()).float().mean())
    return {"section": "nnunet", "device": device, "model": model_name, "size": list(size), "roi": list(roi),
            "tta": tta, "nnunet_s": round(med["nnunet"], 3), "engine_s": round(med["engine"], 3),
            "engine_ratio": round(med["engine"] / med["nnunet"], 3), "label_agreement": round(agree, 5)}


def throughput(device: str, model_name: str, size, fast: bool) -> dict:
    model, card = _network(model_name, device)
    predictor = Predictor(model, card, PredictOptions(device=device, fast=fast, tta=False))
    image = MetaTensor(torch.from_numpy(np.random.default_rng(1).normal(0, 1, size).astype(np.float32))[None],
                       affine=torch.eye(4, dtype=torch.float64))
    predictor.predict(image)
    _sync(device)
    t = clock()
    predictor.predict(image)
    _sync(device)
    seconds = clock() - t
    return {"section": "throughput", "device": device, "model": model_name, "size": list(size), "fast": fast,
            "seconds": round(seconds, 3), "voxels_per_s": int(np.prod(size) / seconds)}


# ---- peak RSS (runs in a child process so ru_maxrss belongs to this case alone) ----

CT_SHAPE = (512, 512, 600)
CT_SPACING = (0.8, 0.8, 1.5)


def _write_ct(path: Path) -> None:
    import nibabel as nib

    data = np.empty(CT_SHAPE, dtype=np.int16)
    x, y = np.meshgrid(np.linspace(-1, 1, CT_SHAPE[0]), np.linspace(-1, 1, CT_SHAPE[1]), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1
    rng = np.random.default_rng(0)
    for k in range(CT_SHAPE[2]):
        slab = np.where(body, 40, -1000) + rng.integers(-30, 30, CT_SHAPE[:2])
        data[:, :, k] = slab
    affine = np.diag([-CT_SPACING[0], -CT_SPACING[1], CT_SPACING[2], 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))


def _rss_child(scan: str, out: str) -> None:
    from medseg.inference.batch import OutputOptions, run_batch
    from medseg.inference.cases import plan_cases

    model = _conv105()
    predictor = Predictor(model, options=PredictOptions(device="cpu", tta=False))
    t = time.perf_counter()
    summary = run_batch(predictor, plan_cases([scan], out), OutputOptions(stats=True))
    seconds = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = summary.results[0]
    sidecar = Path(out).with_suffix("").with_suffix(".json")
    timings = json.loads(sidecar.read_text())["timings_s"] if sidecar.exists() else None
    print(json.dumps({"status": result.status, "message": result.message, "seconds": round(seconds, 1),
                      "peak_rss_gb": round(peak_kb / 2**20, 3), "timings_s": timings}))


def rss() -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("MEDSEG_BENCH_TMP")) as tmp:
        scan = Path(tmp) / "ct.nii"
        _write_ct(scan)
        child = subprocess.run([sys.executable, __file__, "--rss-child", str(scan), str(Path(tmp) / "out.nii")],
                               capture_output=True, text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(child.stderr[-2000:])
        record = json.loads(child.stdout.strip().splitlines()[-1])
    return {"section": "rss", "shape": list(CT_SHAPE), "spacing": list(CT_SPACING), "classes": 105,
            "model_grid": [int(round(n * s / 1.5)) for n, s in zip(CT_SHAPE, CT_SPACING)], **record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="overhead,throughput,rss")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="stunet_t")
    parser.add_argument("--size", default="120,168,120", help="overhead volume size")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCK), default="wall")
    parser.add_argument("--tta", action="store_true", help="nnunet section: mirroring TTA on both sides")
    parser.add_argument("--rss-child", nargs=2, metavar=("SCAN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(*args.rss_child)
        return
    global clock
    clock = CLOCK[args.clock]
    size = tuple(int(s) for s in args.size.split(","))
    print(f"# clock {args.clock}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {args.device}", flush=True)
    for section in args.sections.split(","):
        if section == "overhead":
            print(json.dumps(overhead(args.device, args.model, size, args.batch, args.repeats)), flush=True)
        elif section == "nnunet":
            print(json.dumps(nnunet(args.device, args.model, size, args.repeats, args.tta)), flush=True)
        elif section == "throughput":
            for fast in (False, True):
                print(json.dumps(throughput(args.device, args.model, size, fast)), flush=True)
        elif section == "rss":
            print(json.dumps(rss()), flush=True)


if __name__ == "__main__":
    main()
