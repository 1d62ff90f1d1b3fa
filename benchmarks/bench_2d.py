"""Generic 2D zoo benchmark: every 2D model trained with the same budget on real 2D data, then Dice, HD95,
parameters and CPU inference time per image.

Data (fixed splits): chest X-ray lung masks (cxr_lung_covid_v7: sorted names, first 15 train, last 5 test;
mask 255 = lung, 127 = ignore) and CHASE_DB1 retinal vessels (children 01-10 train, 11-14 test, 1st
observer). Whole-image mode (default): both resized to ``--size`` (images bilinear, masks nearest), one
forward per test image. Patch mode (``--patch P``, meant for the vessels): CHASE at 1/``--chase-factor``
resolution (green channel, CLAHE, z-scored; masks area-downsampled, threshold 0.5), training on random
PxP crops, testing with medseg's 2D sliding window (``medseg.inference.sliding_window``, Gaussian
blending, ``--overlap``) over the whole test image. Metrics are computed on the working grid (HD95 in
pixels of that grid; the true pixel spacing is unknown for the X-rays).

The loop is self-contained (medseg.training's loop is volume/patch oriented): AdamW with poly decay, the
same iterations and batch for every model, cross-entropy (+ soft Dice) for softmax models, the BASNet hybrid loss for sigmoid
ones; deep-supervision outputs get halving weights.

    PYTHONPATH=$PWD python benchmarks/bench_2d.py --device cuda --iters 300 --size 256
    PYTHONPATH=$PWD python benchmarks/bench_2d.py --preset small --iters 40 --size 128 --datasets cxr   # CPU smoke
    PYTHONPATH=$PWD python benchmarks/bench_2d.py --preset small --iters 400 --datasets chase --patch 128  # vessels
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medseg.metrics import compute_metrics
from medseg.models import create_model, unpack_train_output
from medseg.training.basnet_loss import HybridLoss

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
IGNORE = 255

# name -> (zoo model, overrides for the "paper" preset, overrides for the "small" preset)
MODELS = {
    "unet (nnU-Net plain 2D)": ("nnunet_plain_2d", {}, {"base_features": 8}),
    "unet + scSE": ("nnunet_plain_2d", {"scse": True}, {"base_features": 8, "scse": True}),
    "deeplabv3+ mobilenetv2 (os16)": ("deeplabv3plus_mobilenetv2", {}, {"width": 0.5, "aspp_channels": 64}),
    "deeplabv3+ resnet18 (os8)": ("deeplabv3plus_resnet", {}, {"base": 16, "aspp_channels": 64}),
    "ccnet (R=2)": ("ccnet", {}, {"base": 16, "channels": 32}),
    "ocrnet": ("ocrnet", {}, {"base": 16, "channels": 32, "key_channels": 16}),
    "basnet (hybrid loss)": ("basnet", {}, {"base": 8, "layers": (1, 1, 1, 1, 1, 1), "refine_channels": 16}),
    "msga_2d": ("msga_2d", {"layers": (3, 4, 6, 3), "width_per_group": 4},
                {"layers": (1, 1, 1, 1), "groups": 4, "width_per_group": 4, "base_planes": 16, "channels": 16,
                 "pam_max_tokens": 1024}),
}


def _load(path: Path, size: int, mask: bool) -> np.ndarray:
    img = Image.open(path)
    img = img.convert("L") if mask else img
    img = img.resize((size, size), Image.NEAREST if mask else Image.BILINEAR)
    return np.asarray(img)


def _green_clahe(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Green channel, area-downsampled to ``size`` (w, h), CLAHE, z-scored: float32 (1, H, W)."""
    from skimage.exposure import equalize_adapthist

    green = Image.open(path).convert("RGB").getchannel("G").resize(size, Image.BOX)
    x = equalize_adapthist(np.asarray(green, np.float32) / 255.0).astype(np.float32)
    return ((x - x.mean()) / max(float(x.std()), 1e-6))[None]


def _area_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Binary mask area-downsampled to ``size`` (w, h) and re-thresholded at 0.5: int64 (H, W)."""
    m = np.asarray(Image.open(path).convert("L"), np.float32) > 0
    small = Image.fromarray(m.astype(np.float32)).resize(size, Image.BOX)
    return (np.asarray(small) > 0.5).astype(np.int64)


def load_chase_native(root: Path, factor: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """CHASE_DB1 at 1/``factor`` resolution for patch training: {"train"/"test": [(image 1,H,W, labels H,W)]}."""
    base = root / "chase_db1"
    stems = sorted(p.stem for p in (base / "images").glob("*.jpg"))
    size = (999 // factor, 960 // factor)
    out: dict[str, list] = {"train": [], "test": []}
    for s in stems:
        part = "train" if int(s[6:8]) <= 10 else "test"
        out[part].append((_green_clahe(base / "images" / f"{s}.jpg", size),
                          _area_mask(base / "masks" / f"{s}_1stHO.png", size)))
    return out


def observer_row(root: Path, factor: int) -> dict:
    """The 2nd CHASE observer scored against the 1st on the test images at the working grid: human level."""
    base, size = root / "chase_db1", (999 // factor, 960 // factor)
    dices, hd95s = [], []
    for image in sorted((base / "images").glob("*.jpg")):
        if int(image.stem[6:8]) <= 10:
            continue
        ref = _area_mask(base / "masks" / f"{image.stem}_1stHO.png", size)
        other = _area_mask(base / "masks_2ndHO" / f"{image.stem}_2ndHO.png", size)
        m = compute_metrics(other, ref, labels=[1])[0]
        dices.append(m.dice)
        hd95s.append(m.hd95)
    return {"dataset": "chase", "model": "2nd observer (human level)", "zoo": "-", "params_M": 0.0,
            "dice": float(np.mean(dices)), "hd95": float(np.mean(hd95s)), "hd95_median": float(np.median(hd95s)),
            "dice_per_image": [round(float(d), 4) for d in dices], "train_s": 0.0, "train_cpu_s": 0.0,
            "cpu_ms": 0.0}


def load_dataset(name: str, size: int, root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images N,C,H,W float [0,1], labels N,H,W int), "test": ...}."""
    if name == "cxr":
        base = root / "cxr_lung_covid_v7"
        stems = sorted(p.stem for p in (base / "images").glob("*.jpg"))
        split = {"train": stems[:15], "test": stems[15:]}
        pairs = lambda s: (base / "images" / f"{s}.jpg", base / "masks" / f"{s}.png")
    else:
        base = root / "chase_db1"
        stems = sorted(p.stem for p in (base / "images").glob("*.jpg"))
        split = {"train": [s for s in stems if int(s[6:8]) <= 10], "test": [s for s in stems if int(s[6:8]) > 10]}
        pairs = lambda s: (base / "images" / f"{s}.jpg", base / "masks" / f"{s}_1stHO.png")
    out = {}
    for part, names in split.items():
        xs, ys = [], []
        for s in names:
            ip, mp = pairs(s)
            x = _load(ip, size, False).astype(np.float32) / 255.0
            x = x[None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))
            m = _load(mp, size, True)
            y = (m > 0).astype(np.int64) if name == "chase" else np.where(m == 127, IGNORE, (m == 255).astype(np.int64))
            xs.append(x)
            ys.append(y)
        out[part] = (np.stack(xs), np.stack(ys))
    return out


def _loss(raw, target: torch.Tensor, sigmoid: bool, hybrid: HybridLoss) -> torch.Tensor:
    out = unpack_train_output(raw)
    maps = list(out.deep_supervision) + list(out.predictions)
    total = out.aux_loss if out.aux_loss is not None else target.new_zeros((), dtype=torch.float32)
    for i, m in enumerate(maps):
        w = 1.0 if out.predictions else 0.5 ** i
        t = target if m.shape[2:] == target.shape[1:] else \
            F.interpolate(target[:, None].float(), size=m.shape[2:], mode="nearest")[:, 0].long()
        if sigmoid:
            total = total + w * hybrid(m, (t == 1).float()[:, None])
        else:
            ce = F.cross_entropy(m, t, ignore_index=IGNORE)
            valid = (t != IGNORE)[:, None]
            prob = torch.softmax(m, 1)[:, 1:2] * valid
            fg = (t == 1)[:, None].float()
            dice = 1 - (2 * (prob * fg).sum() + 1) / (prob.sum() + fg.sum() + 1)
            total = total + w * (ce + dice)
    return total


def predict(model: torch.nn.Module, x: torch.Tensor, sigmoid: bool) -> np.ndarray:
    with torch.no_grad():
        logits = model(x)
    return ((logits[:, 0] > 0) if sigmoid else logits.argmax(1)).cpu().numpy().astype(np.uint8)


def predict_sliding(model: torch.nn.Module, image: np.ndarray, patch: int, overlap: float,
                    device: torch.device) -> np.ndarray:
    """Labels (H, W) of a whole (C, H, W) image through medseg's 2D sliding window (a 2D model runs on a
    (C, H, W, 1) grid with a window of depth 1; Gaussian blending, argmax / sign of the blended logits)."""
    from medseg.inference.sliding_window import (
        EngineOptions,
        sliding_window_labels,
        window_network,
    )

    card = model.card
    options = EngineOptions(roi=(patch, patch, 1), overlap=overlap, batch_size=4, compute_device=device.type,
                            stitch_device="cpu")
    net = window_network(model, spatial_dims=2, slice_axis=2)
    result = sliding_window_labels(torch.from_numpy(image)[..., None], net, channels=card.out_channels,
                                   activation=card.activation, options=options)
    return (result.labels[..., 0] > 0).numpy().astype(np.uint8)


def _batch_patches(cases: list, idx: torch.Tensor, patch: int, gen: torch.Generator):
    """Random ``patch`` crops of the chosen cases with random flips / 90-degree rotations."""
    xs, ys = [], []
    for k in idx.tolist():
        img, lab = cases[k]
        h, w = lab.shape
        r = int(torch.randint(h - patch + 1, (), generator=gen))
        c = int(torch.randint(w - patch + 1, (), generator=gen))
        x = torch.from_numpy(img[:, r:r + patch, c:c + patch])
        y = torch.from_numpy(lab[r:r + patch, c:c + patch])
        k90 = int(torch.randint(4, (), generator=gen))
        x, y = torch.rot90(x, k90, (1, 2)), torch.rot90(y, k90, (0, 1))
        if torch.rand((), generator=gen) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        xs.append(x)
        ys.append(y)
    return torch.stack(xs).contiguous(), torch.stack(ys).contiguous()


def _build(zoo: str, overrides: dict, in_ch: int, roi: tuple[int, int], device: torch.device) -> torch.nn.Module:
    card_over = {"in_channels": in_ch, "channel_names": tuple(f"c{i}" for i in range(in_ch)), "roi_size": roi}
    return create_model(zoo, **card_over, **overrides).to(device)


def _inferer(args, patched: bool, sigmoid: bool):
    """(model, image C,H,W, device) -> labels H,W: sliding window in patch mode, else one forward."""
    if patched:
        return lambda m, img, dev: predict_sliding(m, img, args.patch, args.overlap, dev)
    return lambda m, img, dev: predict(m, torch.from_numpy(img[None]).to(dev), sigmoid)[0]


def time_inference(model: torch.nn.Module, infer, image: np.ndarray, args) -> tuple[float, float]:
    """Median wall-clock and process-CPU milliseconds of one test image on the CPU with ``--cpu-threads``
    (after one warm-up). CPU time is what load from other jobs changes least."""
    cpu = model.to("cpu").eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(args.cpu_threads)
    infer(cpu, image, torch.device("cpu"))
    walls, cpus = [], []
    for _ in range(args.timing_reps):
        t, c = time.perf_counter(), time.process_time()
        infer(cpu, image, torch.device("cpu"))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    torch.set_num_threads(threads)
    return 1000 * float(np.median(walls)), 1000 * float(np.median(cpus))


def timing_row(label: str, zoo: str, overrides: dict, data: dict, args) -> dict:
    """Inference time only, on a freshly initialised model (the cost does not depend on the weights)."""
    torch.manual_seed(0)
    patched = isinstance(data["train"], list)
    image = data["test"][0][0]   # first test image (C, H, W) in both layouts
    roi = (args.patch, args.patch) if patched else (args.size, args.size)
    model = _build(zoo, overrides, image.shape[0], roi, torch.device("cpu"))
    infer = _inferer(args, patched, model.card.activation == "sigmoid")
    wall_ms, cpu_ms = time_inference(model, infer, image, args)
    return {"model": label, "zoo": zoo, "cpu_ms": wall_ms, "cpu_time_ms": cpu_ms, "load_1min": os.getloadavg()[0]}


def run(label: str, zoo: str, overrides: dict, data: dict, args, device: torch.device) -> dict:
    torch.manual_seed(args.seed)
    patched = isinstance(data["train"], list)
    if patched:
        in_ch, roi = data["train"][0][0].shape[0], (args.patch, args.patch)
    else:
        xtr, ytr = (torch.from_numpy(a) for a in data["train"])
        in_ch, roi = xtr.shape[1], (args.size, args.size)
    model = _build(zoo, overrides, in_ch, roi, device)
    sigmoid = model.card.activation == "sigmoid"
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    hybrid = HybridLoss()
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for it in range(args.iters):
        for group in opt.param_groups:   # nnU-Net's poly decay, the same schedule for every model
            group["lr"] = args.lr * (1 - it / args.iters) ** 0.9
        if patched:
            idx = torch.randint(len(data["train"]), (args.batch,), generator=gen)
            x, y = (t.to(device) for t in _batch_patches(data["train"], idx, args.patch, gen))
        else:
            idx = torch.randint(len(xtr), (args.batch,), generator=gen)
            x, y = xtr[idx].to(device), ytr[idx].to(device)
            flip = torch.rand((), generator=gen) < 0.5
            if flip:
                x, y = x.flip(-1), y.flip(-1)
        loss = _loss(model(x), y, sigmoid, hybrid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    tests = data["test"] if patched else list(zip(*data["test"]))
    infer = _inferer(args, patched, sigmoid)
    dices, hd95s = [], []
    for img, ref in tests:
        pred = infer(model, img, device)
        pred = np.where(ref == IGNORE, 0, pred)
        m = compute_metrics(pred, np.where(ref == IGNORE, 0, ref), labels=[1])[0]
        dices.append(m.dice)
        hd95s.append(m.hd95)
    wall_ms, cpu_ms = time_inference(model, infer, tests[0][0], args)
    return {"model": label, "zoo": zoo, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "dice": float(np.mean(dices)), "hd95": float(np.mean(hd95s)),
            "hd95_median": float(np.median(hd95s)), "dice_per_image": [round(float(d), 4) for d in dices],
            "train_s": train_s, "train_cpu_s": train_cpu_s, "cpu_ms": wall_ms, "cpu_time_ms": cpu_ms,
            "final_loss": loss.item(), "seed": args.seed, "iters": args.iters, "batch": args.batch,
            "input": (f"{args.patch}px patches, 1/{args.chase_factor} res, sliding window {args.overlap}"
                      if patched else f"{args.size}px whole image"), "load_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", choices=("paper", "small"), default="paper")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--datasets", default="cxr,chase")
    parser.add_argument("--models", default="", help="comma-separated zoo names: subset and order")
    parser.add_argument("--patch", type=int, default=0,
                        help="CHASE only: train on PxP patches at 1/--chase-factor resolution, sliding window at test")
    parser.add_argument("--chase-factor", type=int, default=2)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--timing-reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch/patch stream")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per result")
    parser.add_argument("--report", type=Path, default=None, help="only print the table of a --out file")
    parser.add_argument("--timing-only", action="store_true",
                        help="only time inference (untrained models) and write those rows to --out")
    parser.add_argument("--timing", type=Path, default=None,
                        help="with --report: take the inference times from this --timing-only file")
    args = parser.parse_args()
    if args.report:
        rows = _jsonl(args.report)
        if args.timing:
            timed = {(r["dataset"], r["model"]): r for r in _jsonl(args.timing)}
            rows = [{**r, **{k: timed[(r["dataset"], r["model"])][k] for k in ("cpu_ms", "cpu_time_ms")}}
                    if (r["dataset"], r["model"]) in timed else r for r in rows]
        print_table(rows, args.cpu_threads)
        return
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    rows = []
    for ds in args.datasets.split(","):
        data = (load_chase_native(args.data, args.chase_factor) if ds == "chase" and args.patch
                else load_dataset(ds, args.size, args.data))
        if ds == "chase" and args.patch and not args.timing_only:
            _emit(observer_row(args.data, args.chase_factor), rows, args.out)
        for label, (zoo, paper, small) in _selected(args.models):
            over = paper if args.preset == "paper" else small
            row = {"dataset": ds, **(timing_row(label, zoo, over, data, args) if args.timing_only
                                     else run(label, zoo, over, data, args, device))}
            _emit(row, rows, args.out)
    if not args.timing_only:
        print_table(rows, args.cpu_threads)


def _emit(row: dict, rows: list[dict], out: Path | None) -> None:
    """Keep, print and append one result (JSONL), so partial results survive an interrupted run."""
    rows.append(row)
    print(json.dumps(row), flush=True)
    if out:
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _selected(models: str) -> list[tuple[str, tuple]]:
    """MODELS rows whose zoo name is in the comma-separated ``models`` (in that order), or all rows."""
    if not models:
        return list(MODELS.items())
    wanted = models.split(",")
    return sorted(((k, v) for k, v in MODELS.items() if v[0] in wanted), key=lambda kv: wanted.index(kv[1][0]))


def print_table(rows: list[dict], threads: int) -> None:
    """The Markdown table of the README (one row per dataset x model). Dice: mean (sd over test images);
    HD95: mean / median over test images (inf: an empty prediction on some image); train s: CPU seconds."""
    print(f"\n| data | model | params (M) | Dice mean (sd) | HD95 px mean / median | CPU ms/img ({threads} thr, "
          "CPU time / wall) | train CPU s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        sd = f" ({np.std(r['dice_per_image']):.3f})" if "dice_per_image" in r else ""
        med = f" / {r['hd95_median']:.1f}" if "hd95_median" in r else ""
        print(f"| {r['dataset']} | {r['model']} | {r['params_M']:.2f} | {r['dice']:.3f}{sd} | {r['hd95']:.1f}{med} | "
              f"{_ms(r)} | {r.get('train_cpu_s', r['train_s']):.0f} |")


def _ms(row: dict) -> str:
    if row.get("zoo") == "-":      # the human-level row
        return "-"
    return f"{row['cpu_time_ms']:.0f} / {row['cpu_ms']:.0f}" if "cpu_time_ms" in row else f"{row['cpu_ms']:.0f}"


if __name__ == "__main__":
    main()
