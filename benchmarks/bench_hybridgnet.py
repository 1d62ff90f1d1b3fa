"""Experiment: HybridGNet (landmark graph) against a 2D U-Net (pixels) on 20 COVID-19 chest X-rays.

Both train on the same fixed 15/5 split at a reduced resolution with the same wall-clock budget and
augmentation (random affine + gamma + noise), then predict the 5 test images at their original 2000x2000
size. Printed per model: Dice and HD95 (pixels of the original image; the spacing is unknown) per lung and
for both lungs together, topological errors (extra components, holes per lung), and the mean landmark error
(for the U-Net: landmarks traced from its mask when it gives two lungs). The first row is the ceiling of the
template itself: ground-truth landmarks rasterised back, against the ground-truth mask.

    # CPU, a few minutes per model (2 shared cores)
    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_hybridgnet.py --minutes 3 --size 128
    # prepare the data once (needs the ../shared data), then train anywhere from the cache
    PYTHONPATH=$PWD python benchmarks/bench_hybridgnet.py --prepare-only --size 256
    PYTHONPATH=$PWD python benchmarks/bench_hybridgnet.py --device cuda --size 256 --minutes 3
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr_lung_covid_v7"
TEST = ("2cd63b76", "4fed5061", "87d50e40", "bb0e626a", "f64132c8")   # fixed: sorted names [2::4]
ORGANS = ("right_lung", "left_lung")


# ---------------------------------------------------------------------------------------------- data
def prepare(data: Path, size: int, cache: Path | None) -> dict:
    """Inputs at ``size``, landmarks (where the mask allows), U-Net labels, and full-size test cases."""
    if cache is not None and cache.is_file():
        loaded = dict(np.load(cache, allow_pickle=False))
        if int(loaded["size"]) == size:
            return loaded
    from medseg.core.card import Intensity
    from medseg.models._graph_predict import normalise_image
    from medseg.training.graph import read_xray
    from medseg.transforms.landmarks import (
        LandmarkError,
        Letterbox,
        mask_to_landmarks,
        split_lungs,
    )

    names = sorted(p.stem for p in (data / "images").glob("*.jpg"))
    out: dict[str, list] = {k: [] for k in ("names", "inputs", "landmarks", "valid", "reason", "labels")}
    test: dict[str, list] = {k: [] for k in ("test_images", "test_masks", "test_sides", "test_landmarks")}
    for name in names:
        image = read_xray(data / "images" / f"{name}.jpg")
        mask = read_xray(data / "masks" / f"{name}.png").round().astype(np.uint8)
        box = Letterbox(*image.shape, size)
        lungs = split_lungs(mask, border_tolerance=1.0)          # sides for the U-Net labels and the metrics
        sides = np.zeros(mask.shape, np.uint8)
        sides[lungs["right_lung"]], sides[lungs["left_lung"]] = 1, 2
        try:
            graph = mask_to_landmarks(mask, (("right_lung", 44), ("left_lung", 50)))
            points, valid, reason = np.concatenate([graph[o] for o in ORGANS]), True, ""
        except LandmarkError as exc:
            points, valid, reason = np.full((94, 2), np.nan), False, str(exc)
            logging.getLogger("bench").warning("%s: no landmarks (%s)", name, exc)
        onehot = F.one_hot(torch.from_numpy(sides).long(), 3).permute(2, 0, 1)[None].float()
        small = F.interpolate(onehot, size=box.resized, mode="area")[0].argmax(0).numpy()
        label = np.zeros((size, size), np.uint8)
        top, left = box.offset
        label[top:top + small.shape[0], left:left + small.shape[1]] = small
        out["names"].append(name)
        out["inputs"].append(box.apply(normalise_image(image, Intensity("percentile", 0.5, 99.5))).astype(np.float16))
        out["landmarks"].append(box.to_input(points) if valid else points)
        out["valid"].append(valid)
        out["reason"].append(reason)
        out["labels"].append(label)
        if name in TEST:
            test["test_images"].append(image.round().astype(np.uint8))
            test["test_masks"].append(mask)
            test["test_sides"].append(sides)
            test["test_landmarks"].append(points)
    arrays = {k: np.array(v) for k, v in {**out, **test}.items()}
    arrays["size"] = np.array(size)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **arrays)
    return arrays


def split(d: dict) -> tuple[list[int], list[int]]:
    names = list(d["names"])
    test = [names.index(n) for n in TEST]
    return [i for i in range(len(names)) if i not in test], test


# ---------------------------------------------------------------------------------------------- training
class Budget:
    """Stops training once the process has used ``seconds`` of CPU time (GPU runs: wall-clock time), so both
    models get the same compute on a shared, loaded machine."""

    class Spent(Exception):
        pass

    def __init__(self, seconds: float) -> None:
        self.seconds, self.epochs = seconds, 0
        self.cpu0, self.wall0 = time.process_time(), time.time()

    def used(self) -> float:
        return time.time() - self.wall0 if torch.cuda.is_available() else time.process_time() - self.cpu0

    def tick(self, _row: dict) -> None:
        self.epochs += 1
        if self.used() > self.seconds:
            raise Budget.Spent

    def report(self) -> dict:
        return {"epochs": self.epochs, "budget_s_used": round(self.used(), 1),
                "wall_s": round(time.time() - self.wall0, 1)}


def train_hybridgnet(d: dict, train_idx: list[int], args) -> tuple[torch.nn.Module, dict]:
    from medseg.models import create_model
    from medseg.training.graph import GraphTrainConfig, fit_graph

    torch.manual_seed(args.seed)
    model = create_model("hybridgnet", roi_size=(args.size, args.size), width=args.width)
    cases = [{"name": str(d["names"][i]), "image": torch.from_numpy(d["inputs"][i].astype(np.float32))[None],
              "landmarks": torch.from_numpy(d["landmarks"][i]).float()} for i in train_idx if d["valid"][i]]
    config = GraphTrainConfig(epochs=args.epochs, batch_size=4, lr=args.lr, step_size=max(args.epochs // 30, 1),
                              seed=args.seed, device=args.device, val_every=10**9)
    clock = Budget(args.minutes * 60)
    try:
        fit_graph(model, cases, [], config, on_epoch=clock.tick)
    except Budget.Spent:
        pass
    return model.cpu().eval(), {**clock.report(), "train_cases": len(cases)}


def train_unet(d: dict, train_idx: list[int], args) -> tuple[torch.nn.Module, dict]:
    from monai.networks.nets import BasicUNet

    from medseg.training.graph import GraphTrainConfig, random_affine, warp_images
    from medseg.training.losses import DiceCELoss

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = BasicUNet(spatial_dims=2, in_channels=1, out_channels=3, features=(16, 32, 64, 128, 256, 16)).to(device)
    keep = [i for i in train_idx if d["valid"][i] or args.unet_all]
    images = torch.from_numpy(d["inputs"][keep].astype(np.float32))[:, None]
    labels = torch.from_numpy(d["labels"][keep]).float()[:, None]
    aug = GraphTrainConfig()
    gen = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(args.epochs // 30, 1), gamma=0.9)
    loss_fn = DiceCELoss()
    clock = Budget(args.minutes * 60)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(keep), generator=gen)
        for s in range(0, len(order), 4):
            idx = order[s:s + 4]
            if len(idx) < 2:
                continue
            theta = random_affine(len(idx), aug, gen)
            x = warp_images(images[idx], theta)
            y = warp_images(labels[idx], theta, mode="nearest")
            gamma = 0.6 + 0.6 * torch.rand(len(idx), generator=gen)
            x = (x.clamp(0, 1) ** gamma[:, None, None, None] + torch.randn(x.shape, generator=gen) / 128).clamp(0, 1)
            loss = loss_fn(model(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        try:
            clock.tick({})
        except Budget.Spent:
            break
    return model.cpu().eval(), {**clock.report(), "train_cases": len(keep)}


# ---------------------------------------------------------------------------------------------- prediction
def predict_unet(model, image: np.ndarray, size: int) -> np.ndarray:
    from medseg.core.card import Intensity
    from medseg.models._graph_predict import normalise_image
    from medseg.transforms.landmarks import Letterbox

    box = Letterbox(*image.shape, size)
    x = torch.from_numpy(box.apply(normalise_image(image, Intensity("percentile", 0.5, 99.5))))[None, None]
    with torch.no_grad():
        logits = model(x)
    top, left = box.offset
    h, w = box.resized
    logits = F.interpolate(logits[:, :, top:top + h, left:left + w], size=image.shape, mode="bilinear",
                           align_corners=False)
    return logits[0].argmax(0).numpy().astype(np.uint8)


# ---------------------------------------------------------------------------------------------- metrics
def dice(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    p, g = pred & valid, gt & valid
    total = p.sum() + g.sum()
    return 1.0 if total == 0 else 2.0 * float((p & g).sum()) / float(total)


def hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """95th-percentile symmetric surface distance in pixels (max of the two directed 95th percentiles)."""
    from scipy import ndimage as ndi

    if not pred.any() or not gt.any():
        return float("nan")
    rows, cols = np.nonzero(pred | gt)
    box = (slice(max(rows.min() - 1, 0), rows.max() + 2), slice(max(cols.min() - 1, 0), cols.max() + 2))
    p, g = pred[box], gt[box]
    edge_p = p & ~ndi.binary_erosion(p, border_value=0)
    edge_g = g & ~ndi.binary_erosion(g, border_value=0)
    to_g = ndi.distance_transform_edt(~edge_g)[edge_p]
    to_p = ndi.distance_transform_edt(~edge_p)[edge_g]
    return float(max(np.percentile(to_g, 95), np.percentile(to_p, 95)))


def topology(region: np.ndarray) -> tuple[int, int]:
    """(extra components, holes) of a binary region: 8-connected parts beyond one, enclosed 4-connected gaps."""
    from scipy import ndimage as ndi

    parts = ndi.label(region, structure=np.ones((3, 3)))[1]
    _, count = ndi.label(np.pad(~region, 1))
    holes = count - 1 if count else 0                      # the padded border joins all outside background
    return max(parts - 1, 0), holes


def self_intersections(points: np.ndarray) -> int:
    """Pairs of non-adjacent edges of a closed polygon that cross."""
    n = len(points)
    a, b = points, np.roll(points, -1, axis=0)
    count = 0
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue
            d1, d2 = b[i] - a[i], b[j] - a[j]
            den = d1[0] * d2[1] - d1[1] * d2[0]
            if abs(den) < 1e-12:
                continue
            r = a[j] - a[i]
            t, u = (r[0] * d2[1] - r[1] * d2[0]) / den, (r[0] * d1[1] - r[1] * d1[0]) / den
            count += int(0 <= t <= 1 and 0 <= u <= 1)
    return count


def score(pred_sides: np.ndarray, d: dict, k: int) -> dict:
    gt_sides, mask = d["test_sides"][k], d["test_masks"][k]
    valid = mask != 127                                      # V7 "ignore" pixels are left out of Dice
    row = {}
    for label, organ in ((1, "right_lung"), (2, "left_lung"), (None, "lungs")):
        p = pred_sides > 0 if label is None else pred_sides == label
        g = gt_sides > 0 if label is None else gt_sides == label
        row[f"dice_{organ}"] = dice(p, g, valid)
        row[f"hd95_{organ}"] = hd95(p, g)
        if label is not None:
            row[f"extra_{organ}"], row[f"holes_{organ}"] = topology(p)
    return row


def landmark_error(points: np.ndarray | None, gt: np.ndarray) -> float:
    if points is None or np.isnan(gt).any():
        return float("nan")
    return float(np.linalg.norm(points - gt, axis=1).mean())


def evaluate(d: dict, hybrid, unet, size: int) -> dict[str, list[dict]]:
    from medseg.models.hybridgnet import graph_to_mask, predict_graph
    from medseg.transforms.landmarks import (
        LandmarkError,
        landmarks_to_mask,
        mask_to_landmarks,
    )

    rows: dict[str, list[dict]] = {"template ceiling": [], "HybridGNet": [], "U-Net": []}
    for k, name in enumerate(TEST):
        image, gt_points = d["test_images"][k], d["test_landmarks"][k]
        if not np.isnan(gt_points).any():
            ceiling = landmarks_to_mask({"r": gt_points[:44], "l": gt_points[44:]}, image.shape)
            rows["template ceiling"].append({"case": name, **score(ceiling, d, k), "landmark_px": 0.0})
        graph = predict_graph(hybrid, image)
        points = np.concatenate([graph[o] for o in ORGANS])
        pred = graph_to_mask(graph, image.shape, ORGANS)
        rows["HybridGNet"].append({"case": name, **score(pred, d, k), "landmark_px": landmark_error(points, gt_points),
                                   "self_intersections": sum(self_intersections(graph[o]) for o in ORGANS)})
        seg = predict_unet(unet, image, size)
        try:
            traced = mask_to_landmarks(seg > 0, (("right_lung", 44), ("left_lung", 50)), border_tolerance=1.0)
            upoints = np.concatenate([traced[o] for o in ORGANS])
        except LandmarkError:
            upoints = None
        rows["U-Net"].append({"case": name, **score(seg, d, k), "landmark_px": landmark_error(upoints, gt_points)})
    return rows


def summarise(rows: dict[str, list[dict]], size: int) -> str:
    """A Markdown table of means over the test cases (HD95 also as the median, it has outliers)."""
    scale = 2000 / size
    header = ("| model | Dice RL | Dice LL | Dice lungs | HD95 RL / LL / lungs, px (lungs median) "
              f"| extra components | holes | self-crossings | landmark error, px @2000 (@{size}) |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for model, items in rows.items():
        if not items:
            continue

        def mean(key, items=items):
            values = [r[key] for r in items]
            return float(np.nanmean(values)) if not all(np.isnan(values)) else float("nan")
        extra = sum(r["extra_right_lung"] + r["extra_left_lung"] for r in items)
        holes = sum(r["holes_right_lung"] + r["holes_left_lung"] for r in items)
        crossings = sum(r["self_intersections"] for r in items) if "self_intersections" in items[0] else "-"
        lm = mean("landmark_px")
        n_lm = sum(not np.isnan(r["landmark_px"]) for r in items)
        median = float(np.median([r["hd95_lungs"] for r in items]))
        lines.append(f"| {model} (n={len(items)}) | {mean('dice_right_lung'):.3f} | {mean('dice_left_lung'):.3f} "
                     f"| {mean('dice_lungs'):.3f} | {mean('hd95_right_lung'):.0f} / {mean('hd95_left_lung'):.0f} / "
                     f"{mean('hd95_lungs'):.0f} ({median:.0f}) | {extra} | {holes} | {crossings} "
                     f"| {lm:.1f} ({lm / scale:.2f}), n={n_lm} |")
    return "\n".join(lines)


def save_weights(model, path: Path) -> str:
    """fp16 safetensors of a HybridGNet state dict (int buffers kept); returns its sha256."""
    from safetensors.torch import save_file

    from medseg.core.hashing import sha256_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return sha256_file(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=None, help="npz of the prepared data (default runs/cxr_<size>.npz)")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per model (CPU minutes)")
    parser.add_argument("--epochs", type=int, default=3000, help="epoch cap per model (the budget usually ends first)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=420)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--unet-all", action="store_true", help="train the U-Net on all 15, border cases included")
    parser.add_argument("--save-weights", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    started = time.time()
    d = prepare(args.data, args.size, args.cache or ROOT / "runs" / f"cxr_{args.size}.npz")
    train_idx, _ = split(d)
    skipped = [f"{d['names'][i]}: {d['reason'][i]}" for i in range(len(d["names"])) if not d["valid"][i]]
    print(f"data: {len(d['names'])} images, {len(skipped)} without landmarks; prepared in {time.time() - started:.0f} s")
    for line in skipped:
        print("  skipped", line)
    if args.prepare_only:
        return
    hybrid, h_info = train_hybridgnet(d, train_idx, args)
    unet, u_info = train_unet(d, train_idx, args)
    print(f"HybridGNet: {h_info}, {sum(p.numel() for p in hybrid.parameters())} parameters")
    print(f"U-Net:      {u_info}, {sum(p.numel() for p in unet.parameters())} parameters")
    rows = evaluate(d, hybrid, unet, args.size)
    table = summarise(rows, args.size)
    print(table)
    for model, items in rows.items():
        for r in items:
            print(model, r["case"], {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items() if k != "case"})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "hybridgnet": h_info,
                                         "unet": u_info, "rows": rows, "table": table}, indent=1, default=float))
    if args.save_weights:
        print("weights", args.save_weights, "sha256", save_weights(hybrid, args.save_weights))


if __name__ == "__main__":
    main()
