"""Generic 2D zoo benchmark: every 2D model trained with the same budget on real 2D data, then Dice, HD95,
parameters and CPU inference time per image.

Data (fixed splits): chest X-ray lung masks (cxr_lung_covid_v7: sorted names, first 15 train, last 5 test;
mask 255 = lung, 127 = ignore) and CHASE_DB1 retinal vessels (children 01-10 train, 11-14 test, 1st
observer), both resized to ``--size`` (images bilinear, masks nearest). Metrics are computed on that grid
(HD95 in pixels of the resized grid; the true pixel spacing is unknown for the X-rays).

The loop is self-contained (medseg.training's loop is volume/patch oriented): AdamW, same iterations and
batch for every model, cross-entropy (+ soft Dice) for softmax models, the BASNet hybrid loss for sigmoid
ones; deep-supervision outputs get halving weights.

    PYTHONPATH=$PWD python benchmarks/bench_2d.py --device cuda --iters 300 --size 256
    PYTHONPATH=$PWD python benchmarks/bench_2d.py --preset small --iters 40 --size 128 --datasets cxr   # CPU smoke
"""
from __future__ import annotations

import argparse
import json
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


def run(label: str, zoo: str, overrides: dict, data: dict, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    xtr, ytr = (torch.from_numpy(a) for a in data["train"])
    in_ch = xtr.shape[1]
    card_over = {"in_channels": in_ch, "channel_names": tuple(f"c{i}" for i in range(in_ch)),
                 "roi_size": (args.size, args.size)}
    model = create_model(zoo, **card_over, **overrides).to(device)
    sigmoid = model.card.activation == "sigmoid"
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    hybrid = HybridLoss()
    gen = torch.Generator().manual_seed(0)
    model.train()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        idx = torch.randint(len(xtr), (args.batch,), generator=gen)
        x, y = xtr[idx].to(device), ytr[idx].to(device)
        flip = torch.rand((), generator=gen) < 0.5
        if flip:
            x, y = x.flip(-1), y.flip(-1)
        loss = _loss(model(x), y, sigmoid, hybrid)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    model.eval()
    xte, yte = data["test"]
    dices, hd95s = [], []
    for i in range(len(xte)):
        pred = predict(model, torch.from_numpy(xte[i:i + 1]).to(device), sigmoid)[0]
        ref = yte[i]
        pred = np.where(ref == IGNORE, 0, pred)
        m = compute_metrics(pred, np.where(ref == IGNORE, 0, ref), labels=[1])[0]
        dices.append(m.dice)
        hd95s.append(m.hd95)
    cpu = model.to("cpu")
    torch.set_num_threads(args.cpu_threads)
    x1 = torch.from_numpy(xte[:1])
    predict(cpu, x1, sigmoid)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        predict(cpu, x1, sigmoid)
        times.append(time.perf_counter() - t)
    return {"model": label, "zoo": zoo, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "dice": float(np.mean(dices)), "hd95": float(np.mean(hd95s)), "train_s": train_s,
            "cpu_ms": 1000 * float(np.median(times)), "final_loss": loss.item()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", choices=("paper", "small"), default="paper")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--datasets", default="cxr,chase")
    parser.add_argument("--models", default="", help="comma-separated subset of zoo names")
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per result")
    parser.add_argument("--report", type=Path, default=None, help="only print the table of a --out file")
    args = parser.parse_args()
    if args.report:
        print_table([json.loads(line) for line in args.report.read_text().splitlines() if line.strip()],
                    args.cpu_threads)
        return
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    rows = []
    for ds in args.datasets.split(","):
        data = load_dataset(ds, args.size, args.data)
        for label, (zoo, paper, small) in MODELS.items():
            if args.models and zoo not in args.models.split(","):
                continue
            row = {"dataset": ds, **run(label, zoo, paper if args.preset == "paper" else small, data, args, device)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print_table(rows, args.cpu_threads)


def print_table(rows: list[dict], threads: int) -> None:
    """The Markdown table of the README (one row per dataset x model)."""
    print(f"\n| data | model | params (M) | Dice | HD95 (px) | CPU ms/img ({threads} thr) | train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['model']} | {r['params_M']:.2f} | {r['dice']:.3f} | {r['hd95']:.1f} | "
              f"{r['cpu_ms']:.0f} | {r['train_s']:.0f} |")


if __name__ == "__main__":
    main()
