"""medseg.metrics vs MONAI on a 256x256x160 abdominal-CT-like case: same numbers, how much faster.

A synthetic label map with six organ-shaped structures (liver, spleen, kidneys, pancreas, aorta) at
1.5 x 1.5 x 2.0 mm, and a prediction with realistic errors (boundary jitter everywhere, a false-positive
island, a missed pancreas tail). MONAI's numbers come from ``compute_hausdorff_distance`` (max and
percentile=95) and ``compute_average_surface_distance(symmetric=True)`` on one-hot tensors (the one-hot
conversion is not timed); ours from one ``compute_metrics`` call on the label maps, which also returns
Dice, IoU, precision, sensitivity, volumes, directed mean distances and NSD.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [--repeats 3] [--threads 1]``
"""
from __future__ import annotations

import argparse
import time
import warnings
from typing import Self

import numpy as np
from scipy import ndimage

SHAPE = (256, 256, 160)
SPACING = (1.5, 1.5, 2.0)
ORGANS = (  # label, name, centre (mm), radii (mm)
    (1, "liver", (150, 170, 170), (90, 70, 80)),
    (2, "spleen", (260, 200, 190), (45, 35, 55)),
    (3, "kidney_right", (145, 255, 160), (28, 30, 50)),
    (4, "kidney_left", (245, 265, 160), (28, 30, 50)),
    (5, "pancreas", (200, 180, 150), (60, 15, 15)),
    (6, "aorta", (190, 220, 160), (10, 10, 140)),
)


def smooth_noise(rng: np.random.Generator, grid: tuple[int, int, int], amplitude: float) -> np.ndarray:
    """Low-frequency noise on the full grid (cubic upsampling of a coarse random grid)."""
    coarse = rng.normal(size=grid).astype(np.float32)
    field = ndimage.zoom(coarse, [s / g for s, g in zip(SHAPE, grid)], order=1, mode="nearest")
    return field[: SHAPE[0], : SHAPE[1], : SHAPE[2]] * amplitude


def organs(noise: np.ndarray) -> np.ndarray:
    """Implicit ellipsoids deformed by ``noise``: label where sum(((x - c) / r)^2) + noise < 1."""
    coords = [np.arange(n, dtype=np.float32) * s for n, s in zip(SHAPE, SPACING)]
    out = np.zeros(SHAPE, np.uint8)
    for label, _, centre, radii in ORGANS:
        box = tuple(slice(max(0, int((c - 1.4 * r) / s)), min(n, int((c + 1.4 * r) / s) + 1))
                    for c, r, s, n in zip(centre, radii, SPACING, SHAPE))
        x, y, z = ((coords[i][box[i]] - centre[i]) / radii[i] for i in range(3))
        f = x[:, None, None] ** 2 + y[None, :, None] ** 2 + z[None, None, :] ** 2 + noise[box]
        out[box][f < 1] = label
    return out


def make_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference) label maps."""
    shape_noise = smooth_noise(np.random.default_rng(seed), (9, 9, 7), 0.12)
    ref = organs(shape_noise)
    pred = organs(shape_noise + smooth_noise(np.random.default_rng(seed + 1), (24, 24, 16), 0.06))
    pred[20:34, 30:42, 40:50][pred[20:34, 30:42, 40:50] == 0] = 2  # false-positive island far from the spleen
    tail = pred == 5
    tail[: int(230 / SPACING[0])] = False
    pred[tail] = 0  # pancreas tail missed
    return pred, ref


def monai_metrics(pred: np.ndarray, ref: np.ndarray, labels: list[int]) -> tuple[dict, dict]:
    """MONAI's HD, HD95 and ASSD per label, and the seconds each call took."""
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
    )

    p = torch.from_numpy(np.stack([pred == v for v in labels])[None])
    r = torch.from_numpy(np.stack([ref == v for v in labels])[None])
    kw = {"include_background": True, "spacing": list(SPACING)}
    calls = {
        "hd": lambda: compute_hausdorff_distance(p, r, **kw),
        "hd95": lambda: compute_hausdorff_distance(p, r, percentile=95, **kw),
        "assd": lambda: compute_average_surface_distance(p, r, symmetric=True, **kw),
    }
    values, seconds = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, call in calls.items():
            with Timer() as timer:
                values[key] = call()[0].numpy()
            seconds[key] = timer
    return values, seconds


class Timer:
    """Wall-clock and CPU seconds of a block (CPU time is the steadier figure on a shared machine)."""

    def __enter__(self) -> Self:
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of medseg (the best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (MONAI's tensor ops)")
    args = parser.parse_args()

    import torch

    from medseg.metrics import compute_metrics

    torch.set_num_threads(args.threads)
    pred, ref = make_case()
    labels = [label for label, *_ in ORGANS]
    print(f"case {SHAPE} at {SPACING} mm, {len(labels)} labels, torch threads {args.threads}")
    for label, name, *_ in ORGANS:
        n_ref, n_pred = int((ref == label).sum()), int((pred == label).sum())
        print(f"  {label} {name:<13} reference {n_ref * np.prod(SPACING) / 1000:7.1f} mL, "
              f"prediction {n_pred * np.prod(SPACING) / 1000:7.1f} mL")

    compute_metrics(pred[:64, :64, :64], ref[:64, :64, :64], SPACING)  # warm-up (imports)
    theirs, seconds = monai_metrics(pred, ref, labels)
    runs = []
    for _ in range(args.repeats):
        with Timer() as timer:
            ours = compute_metrics(pred, ref, SPACING, labels)
        runs.append(timer)
    with Timer() as t_sd:
        compute_metrics(pred, ref, SPACING, labels, convention="surface-distance")

    worst = 0.0
    print(f"\n{'label':<16}{'HD mm':>10}{'HD95 mm':>10}{'ASSD mm':>10}   max |medseg - MONAI| mm")
    for i, m in enumerate(ours):
        diffs = [abs(getattr(m, k) - float(theirs[k][i])) for k in ("hd", "hd95", "assd")]
        worst = max(worst, *diffs)
        print(f"{m.label} {ORGANS[i][1]:<14}{m.hd:10.4f}{m.hd95:10.4f}{m.assd:10.4f}   {max(diffs):.1e}")
    print(f"\nlargest difference over all labels and metrics: {worst:.1e} mm "
          f"({'identical' if worst <= 1e-6 else 'DIFFERENT'} to 1e-6 mm)")
    for clock in ("wall", "cpu"):
        monai3 = sum(getattr(t, clock) for t in seconds.values())
        monai2 = getattr(seconds["hd95"], clock) + getattr(seconds["assd"], clock)
        mine = min(getattr(t, clock) for t in runs)
        print(f"\n{clock} seconds")
        print(f"  MONAI hd + hd95 + assd (3 calls):                  {monai3:7.3f}")
        print(f"  MONAI hd95 + assd (2 calls):                       {monai2:7.3f}")
        print(f"  medseg, every metric, monai convention (best of {args.repeats}): {mine:7.3f}")
        print(f"  medseg, every metric, surface-distance convention: {getattr(t_sd, clock):7.3f}")
        print(f"  speed-up: {monai2 / mine:.1f}x vs MONAI hd95 + assd, {monai3 / mine:.1f}x vs hd + hd95 + assd")


if __name__ == "__main__":
    main()
