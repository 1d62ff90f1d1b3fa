"""GPU section (``--device cuda``): windows per second of medseg's engine vs MONAI's ``sliding_window_inference``.

Same GPU, same network and weights (random, eval mode), same input: a random ``--gpu-shape`` volume (default
256x256x192), window 96^3, overlap 0.5, Gaussian blending, no TTA. Networks: STU-Net B and Swin UNETR (the zoo's
``stunet_b`` and ``swin_unetr`` built with a 96^3 window). Arms:

- ``medseg``: :func:`medseg.inference.segment.segment` with the prediction defaults on CUDA: fp16 autocast
  (AMP), channels-last 3D, windows batched by :func:`~medseg.inference.sliding_window.auto_batch_size`, stitched
  on the GPU, argmax labels;
- ``monai_amp``: ``sliding_window_inference(..., sw_batch_size=4, mode="gaussian")`` under the same autocast,
  then argmax (the engine's savings without the precision difference);
- ``monai_fp32``: the same in fp32, as MONAI's tutorials run it.

Each arm: one warm-up volume (cuDNN autotuning), then ``--gpu-repeats`` timed volumes with
``torch.cuda.synchronize()``; windows per second = windows in the volume / median seconds (each arm's own
window count: MONAI's and medseg's grids can differ by a window per axis). Goal: medseg >= 1.5x MONAI.
Without a GPU the section says so and returns (nothing else runs).
"""
from __future__ import annotations

import math
import statistics
import time

MODELS = ("stunet_b", "swin_unetr")
ROI = (96, 96, 96)


def add_arguments(parser) -> None:
    parser.add_argument("--gpu-shape", default="256,256,192", help="gpu section: volume size X,Y,Z")
    parser.add_argument("--gpu-repeats", type=int, default=3, help="gpu section: timed volumes per arm")
    parser.add_argument("--gpu-models", default=",".join(MODELS), help="gpu section: zoo models to run")


def _median_seconds(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _monai_windows(shape, roi, overlap: float) -> int:
    """Windows MONAI's sliding_window_inference places (its scan interval is int(roi * (1 - overlap)))."""
    count = 1
    for n, r in zip(shape, roi):
        step = max(int(r * (1 - overlap)), 1)
        count *= 1 if n <= r else math.ceil((n - r) / step) + 1
    return count


def run_model(name: str, shape: tuple[int, int, int], repeats: int, device_name: str = "cuda") -> dict:
    """One network's three arms (``device_name="cpu"``: a smoke run of this code where no GPU is lent)."""
    import torch
    from monai.inferers import sliding_window_inference

    from medseg.inference.segment import engine_options, segment
    from medseg.inference.windows import WindowGrid
    from medseg.models import create_model

    device = torch.device(device_name)
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    model = create_model(name)
    card = model.card.replace(roi_size=ROI)
    model = model.to(device).eval()
    x = torch.randn(card.in_channels, *shape)
    options = engine_options(card, shape, overlap=0.5, tta=False, compute=device, stitch=device, amp=True)
    windows = len(WindowGrid.plan(shape, ROI, 0.5).windows)

    def medseg_arm():
        segment(model, card, x, options)

    def monai_arm(amp: bool):
        def run_once():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=amp and on_gpu):
                logits = sliding_window_inference(x[None].to(device), ROI, 4, model, overlap=0.5, mode="gaussian")
                logits = logits[0] if isinstance(logits, (tuple, list)) else logits
                logits.argmax(1)
        return run_once

    row: dict = {"windows_medseg": windows, "windows_monai": _monai_windows(shape, ROI, 0.5),
                 "batch_size_medseg": options.batch_size}
    for arm, fn, count in (("medseg", medseg_arm, windows),
                           ("monai_amp", monai_arm(True), row["windows_monai"]),
                           ("monai_fp32", monai_arm(False), row["windows_monai"])):
        if on_gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        seconds = _median_seconds(fn, repeats, sync)
        row[arm] = {"s_per_volume": seconds, "windows_per_s": count / seconds,
                    "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None}
        print(f"  {name} {arm}: {seconds:.2f} s/volume, {count / seconds:.1f} windows/s", flush=True)
    for ref in ("monai_amp", "monai_fp32"):
        row[f"speedup_vs_{ref}"] = row["medseg"]["windows_per_s"] / row[ref]["windows_per_s"]
    return row


def run(args) -> dict:
    import torch

    if args.device != "cuda":
        return {"skipped": "run with --device cuda"}
    if not torch.cuda.is_available():
        message = "no CUDA GPU here: the GPU section needs one (it runs unchanged where a GPU is lent)"
        print(f"  {message}", flush=True)
        return {"skipped": message}
    torch.backends.cudnn.benchmark = True
    shape = tuple(int(v) for v in args.gpu_shape.split(","))
    out: dict = {"gpu": torch.cuda.get_device_name(0), "shape": shape, "roi": ROI, "models": {}}
    for name in args.gpu_models.split(","):
        out["models"][name] = run_model(name, shape, args.gpu_repeats)  # type: ignore[arg-type]
        print(f"  {name}: medseg {out['models'][name]['speedup_vs_monai_amp']:.2f}x MONAI (same AMP), "
              f"{out['models'][name]['speedup_vs_monai_fp32']:.2f}x MONAI fp32 (goal 1.5x)", flush=True)
    return out
