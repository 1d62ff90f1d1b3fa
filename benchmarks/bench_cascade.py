"""Cascade vs one full-resolution sliding-window model on a real CT, for single small organs.

    python benchmarks/bench_cascade.py [--data ../shared/data/totalsegmentator_example] [--zoom 2] [--threads 2]

The reference labels are TotalSegmentator *model output* (example_seg_fast_force_split), not manual ground
truth. No trained stage models exist yet, so both arms use *untrained* STU-Net-T networks of the same size
(the cost of a forward pass does not depend on the weights), and the cascade's ROI comes from an
*oracle* stage-1 prior: the reference mask resampled to the stage-1 grid. Timing therefore = stage-1
network on the coarse scan (timed separately) + the cascade with that prior (stage 2 in the ROI).
Dice/HD95 are those of the oracle prior alone after upsampling + smoothing (``prior_weight=1``): the
accuracy ceiling of a perfect coarse stage 1, not of a trained cascade.
``--zoom 2`` resamples the 3 mm scan to 1.5 mm (TotalSegmentator's native spacing) to get a large scan.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference

from medseg.cascade._resample import coarse_shape, resize
from medseg.cascade.pipeline import CascadePipeline
from medseg.cascade.roi import spacing_of
from medseg.io import read_image
from medseg.metrics.segmentation import compute_metrics
from medseg.models import create_model

ROOT = Path(__file__).resolve().parents[1]
ORGANS = {"pancreas": 7, "kidney_right": 2, "gallbladder": 4, "aorta": 52}


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _net(in_ch: int, spacing, roi):
    return create_model("stunet_t", in_channels=in_ch, channel_names=tuple(f"c{i}" for i in range(in_ch)),
                        out_channels=2, labels=("background", "organ"), roi_size=roi, spacing=spacing).eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/totalsegmentator_example"))
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--roi", type=int, default=64)
    ap.add_argument("--coarse", type=float, default=6.0)
    ap.add_argument("--organs", default=",".join(ORGANS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    img = read_image(Path(a.data) / "example_ct.nii.gz")
    lab = read_image(Path(a.data) / "example_seg_fast_force_split.nii.gz")
    affine = np.asarray(img.affine, dtype=np.float64)
    x, y = img.as_tensor().float(), lab.as_tensor()
    if a.zoom > 1:
        shape = tuple(s * a.zoom for s in x.shape[1:])
        x = resize(x, shape)
        y = resize(y.float(), shape, mode="nearest").round()
        affine[:3, :3] /= a.zoom
        affine[:3, 3] -= affine[:3, :3] @ np.full(3, (a.zoom - 1) / 2)       # same field of view
    spacing = spacing_of(affine)
    image = MetaTensor(x, affine=torch.as_tensor(affine))
    full = tuple(x.shape[1:])
    roi = (a.roi,) * 3
    print(f"scan {full} at {spacing.round(2).tolist()} mm ({np.prod(full) / 1e6:.1f} M voxels); "
          f"labels = TotalSegmentator output, not manual; networks untrained STU-Net-T, patch {roi}")

    full_net = _net(1, None, roi)
    count = {"n": 0}

    def counted(t):
        count["n"] += t.shape[0]
        return full_net(t)

    xn = (x.clamp(-1000, 1000) / 1000.0)
    _reset_peak()
    t0 = time.perf_counter()
    with torch.inference_mode():
        sliding_window_inference(xn[None], roi, 1, counted, overlap=0.25, mode="gaussian")
    t_full, m_full = time.perf_counter() - t0, _peak_mb()
    print(f"full-res sliding window: {t_full:6.1f} s  peak RSS {m_full:6.0f} MB  windows {count['n']}")

    s1, s2 = _net(1, (a.coarse,) * 3, roi), _net(2, None, roi)
    cshape = coarse_shape(full, spacing, (a.coarse,) * 3)
    _reset_peak()
    t0 = time.perf_counter()
    pipe = CascadePipeline(s1, s2, margin_mm=10.0, sigma_mm=1.0)
    with torch.inference_mode():
        n1 = {"n": 0}
        sliding_window_inference(resize(xn, cshape)[None], roi, 1, lambda t: (n1.__setitem__("n", n1["n"] + t.shape[0]), s1(t))[1],
                                 overlap=0.25, mode="gaussian")
    t_s1, m_s1 = time.perf_counter() - t0, _peak_mb()
    print(f"stage 1 at {a.coarse} mm {cshape}: {t_s1:6.1f} s  peak RSS {m_s1:6.0f} MB  windows {n1['n']}")
    print(f"{'organ':14s} {'ROI':>14s} {'ROI %':>6s} {'win':>4s} {'casc s':>7s} {'speedup':>7s} {'peak MB':>8s} "
          f"{'Dice*':>6s} {'HD95* mm':>8s} {'noLCC':>6s} {'HD95':>8s}")
    for organ in a.organs.split(","):
        mask = (y[0] == ORGANS[organ]).float()[None]
        if not mask.any():
            print(f"{organ:14s} absent from the labels")
            continue
        fg = resize(mask, cshape)
        prior = torch.cat([1 - fg, fg])
        for w in (0.0, 1.0):
            pipe.prior_weight = w
            _reset_peak()
            t0 = time.perf_counter()
            res = pipe(image, prior=prior)
            t_c, m_c = time.perf_counter() - t0, max(_peak_mb(), m_s1)
            if w == 0.0:
                timing = (t_c, m_c, res.counters["stage2_windows"], res.rois["organ"])
        ref = mask[0].numpy().astype(np.uint8)
        m = compute_metrics((res.label[0].numpy() == 1).astype(np.uint8), ref, spacing.tolist(), labels=[1])[0]
        pipe.largest_component = False
        all_parts = pipe(image, prior=prior).label[0].numpy() == 1
        pipe.largest_component = True
        m2 = compute_metrics(all_parts.astype(np.uint8), ref, spacing.tolist(), labels=[1])[0]
        t_c, m_c, win, r = timing
        total = t_s1 + t_c
        print(f"{organ:14s} {r.shape!s:>14s} {100 * r.voxels / np.prod(full):5.1f}% {win:4d} {total:7.1f} "
              f"{t_full / total:6.1f}x {m_c:8.0f} {m.dice:6.3f} {m.hd95:8.1f} {m2.dice:6.3f} {m2.hd95:8.1f}")
    print("* Dice/HD95: oracle 6 mm prior upsampled + smoothed vs TotalSegmentator labels (ceiling of stage 1 "
          "alone), not a trained cascade; noLCC = without largest-component postprocessing; "
          "cascade s = stage 1 + stage 2 in the ROI")


if __name__ == "__main__":
    main()
