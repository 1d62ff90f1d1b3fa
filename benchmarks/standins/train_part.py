"""Train a trained-like stand-in for TotalSegmentator's 3 mm part (task 297) on the example CT.

The benchmark's real-size stand-ins have seeded random weights: 117 random heads tie almost everywhere, so
fp32 rounding differences between runtimes flip labels and the accuracy guard refuses OpenVINO for reasons
no trained network has. This script fits the real-size 3 mm network (the architecture and plans that
``benchmarks/bench_totalseg.py`` builds: nnU-Net's default U-Net, 112x112x128 patch, 118 outputs) to
TotalSegmentator's own 3 mm labels of ``example_ct`` (``example_seg_fast_force_split.nii.gz``, the output of
``TotalSegmentator --fast --ml`` on that scan: task 297's label IDs are the 117-class map's). It is a
stand-in, not a model: it has seen one scan. What it gives is realistic logit margins (large inside organs,
small only at boundaries) for the guard and the benchmark to be judged on.

The scan goes through what TotalSegmentator and nnU-Net do before the window (closest canonical orientation,
3 mm resampling, int32, then ``medseg.nnunet.preprocessing.preprocess``: transpose, crop to non-zero,
CTNormalization with the plans' intensity properties); the labels follow the same grid. Training: random
crops from the scan zero-padded to the inference patch (as the window sees it; padding is ignored in the
loss), half centred on a voxel of a random present class, cross-entropy plus soft Dice, Adam with a
decaying learning rate (bf16 autocast unless ``--no-bf16``; the weights stay fp32), until ``--iterations``
or ``--minutes`` (``--resume`` goes on from the cached weights). The part folder (plans.json, dataset.json,
``fold_0/checkpoint_final.pth`` in nnU-Net's checkpoint layout, ``train_log.json``) is written under
``--out`` (default ``$MEDSEG_STANDINS`` or ``<repo>/../standins``; ~120 MB, not committed), where
``bench_totalseg.py --heads trained`` finds it::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/standins/train_part.py [--iterations 1000] [--minutes 25] \\
        [--crop 64] [--threads 2] [--out ../standins]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXAMPLES = ROOT.parent / "shared" / "data" / "totalsegmentator_example"
TASK = "total_fast"  # the 3 mm task: one part, task 297
BIG_ORGANS = ("liver", "spleen", "kidney_right", "kidney_left", "stomach", "aorta", "lung_lower_lobe_left",
              "lung_lower_lobe_right", "autochthon_left", "autochthon_right", "iliopsoas_left", "pancreas")

log = logging.getLogger("train_part")


def standins_root() -> Path:
    """Where trained stand-in part folders are cached: ``$MEDSEG_STANDINS`` or ``<repo>/../standins``."""
    return Path(os.environ.get("MEDSEG_STANDINS", ROOT.parent / "standins"))


def part_folder(root: Path) -> Path:
    """The 3 mm part's folder under ``root`` (``<dataset>/<model>``, TotalSegmentator's names)."""
    from medseg.totalseg.tasks import parse_task

    (part,) = parse_task(f"totalsegmentator:{TASK}").parts
    return root / part.relative


def layout(home: Path) -> Path:
    """The benchmark's stand-in home for the 3 mm task (random weights); returns its part folder."""
    from benchmarks.bench_totalseg import build_home

    build_home(home, TASK)
    return part_folder(home / "nnunet" / "results")


def training_case(folder: Path, ct: Path, seg: Path, work: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The preprocessed scan ``(1, *spatial)`` float32, its labels ``(spatial)`` int64 on the same grid, and the
    part's label names (index = label value)."""
    import nibabel as nib
    import SimpleITK as sitk
    from scipy.ndimage import zoom

    from medseg.nnunet.preprocessing import preprocess
    from medseg.totalseg.pipeline import resample_to_spacing
    from medseg.totalseg.tasks import parse_task

    plans = json.loads((folder / "plans.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    names = list(json.loads((folder / "dataset.json").read_text())["labels"])
    image, labels = nib.as_closest_canonical(nib.load(ct)), nib.as_closest_canonical(nib.load(seg))
    if image.shape != labels.shape or not np.allclose(image.affine, labels.affine, atol=1e-3):
        raise SystemExit(f"{seg} is not on the grid of {ct}")
    spacing = parse_task(f"totalsegmentator:{TASK}").spacing_mm
    data, affine = resample_to_spacing(np.asarray(image.dataobj, dtype=np.float64), image.affine, spacing)
    lab = np.asarray(labels.dataobj).astype(np.int16)
    if lab.shape != data.shape:  # nearest neighbour onto the resampled grid
        lab = zoom(lab, np.array(data.shape) / np.array(lab.shape), order=0, mode="nearest")
    scan, lab_file = work / "scan_0000.nii.gz", work / "labels.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.int32), affine), scan)
    nib.save(nib.Nifti1Image(lab, affine), lab_file)
    case = preprocess([scan], plans, config)
    target = sitk.GetArrayFromImage(sitk.ReadImage(str(lab_file)))  # SimpleITK's axis order, as preprocess reads
    target = target.transpose(plans.get("transpose_forward", [0, 1, 2]))
    target = target[tuple(slice(a, b) for a, b in case.bbox)]
    if target.shape != case.data.shape[1:]:
        raise SystemExit(f"labels {target.shape} do not follow the preprocessed scan {case.data.shape[1:]} "
                         "(the plans resample the scan: not supported here)")
    if target.max() >= len(names):
        raise SystemExit(f"{seg} holds label {target.max()}, the part has {len(names) - 1}")
    return case.data, target.astype(np.int64), names


def padded(data: np.ndarray, target: np.ndarray, patch: list[int]):
    """Scan and labels zero-padded to the inference patch as the window sees them (labels -1 in the padding)."""
    import torch

    from medseg.nnunet.sliding import pad_to

    x, back = pad_to(torch.from_numpy(data), patch)
    y, _ = pad_to(torch.from_numpy(target + 1), patch)
    return x, y - 1, back


def sample_crop(x, y, crop: list[int], rng: np.random.Generator, classes: np.ndarray, foreground: float = 1 / 3):
    """A random crop ``(1, 1, *crop)`` / ``(1, *crop)``; with probability ``foreground`` centred on a voxel of a
    random present class (small organs get seen)."""
    shape = y.shape
    if rng.random() < foreground:
        value = rng.choice(classes)
        where = np.argwhere(y.numpy() == value)
        centre = where[rng.integers(len(where))]
        start = [int(np.clip(c - k // 2, 0, s - k)) for c, k, s in zip(centre, crop, shape)]
    else:
        start = [int(rng.integers(0, s - k + 1)) for k, s in zip(crop, shape)]
    box = tuple(slice(a, a + k) for a, k in zip(start, crop))
    return x[(slice(None), *box)][None].contiguous(), y[box][None].contiguous()


def loss_fn(logits, y, heads: int):
    """Cross-entropy plus soft Dice over the classes present in the crop (padding ignored)."""
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, y, ignore_index=-1)
    valid = (y >= 0)
    prob = logits.softmax(1) * valid[:, None]
    onehot = F.one_hot(y.clamp(min=0), heads).permute(0, 4, 1, 2, 3).float() * valid[:, None]
    present = onehot.sum((0, 2, 3, 4)) > 0
    inter = (prob * onehot).sum((0, 2, 3, 4))
    denom = prob.sum((0, 2, 3, 4)) + onehot.sum((0, 2, 3, 4))
    dice = (2 * inter + 1e-5) / (denom + 1e-5)
    return ce + (1 - dice[present].mean()) if bool(present.any()) else ce, ce.item()


def dice_by_name(pred: np.ndarray, target: np.ndarray, names: list[str]) -> dict[str, float]:
    """Dice of every label present in ``target`` (by name)."""
    out = {}
    for value in np.unique(target):
        if value <= 0:
            continue
        a, b = pred == value, target == value
        out[names[value]] = round(float(2 * (a & b).sum() / (a.sum() + b.sum())), 4)
    return out


def evaluate(net, x, y, back, names: list[str]) -> dict:
    """The whole padded scan (the one inference window of the 3 mm task) through the network: Dice per class
    against the training labels, and the top-two logit gap."""
    import torch

    net.eval()
    with torch.inference_mode():
        logits = net(x[None])[0]
    net.train()
    logits = logits[back]  # back: (channels, *spatial) slices of pad_to
    target = y[back[1:]].numpy()
    pred = logits.argmax(0).numpy()
    top = logits.topk(2, dim=0).values
    gap = (top[0] - top[1]).numpy()
    dice = dice_by_name(pred, target, names)
    return {"voxel_accuracy": round(float((pred == target).mean()), 5), "dice": dice,
            "dice_big_organs": {n: dice.get(n) for n in BIG_ORGANS if n in dice},
            "mean_dice_present": round(float(np.mean(list(dice.values()))), 4),
            "gap_median": round(float(np.median(gap)), 3),
            **{f"gap_below_{t}": round(float((gap < t).mean()), 5) for t in (0.01, 0.1, 1.0)}}


def save_checkpoint(net, folder: Path, trainer: str, meta: dict) -> Path:
    """``fold_0/checkpoint_final.pth`` in nnU-Net's layout (what nnU-Net, TotalSegmentator and medseg load)."""
    import torch

    from medseg.core.atomic import atomic_path

    path = folder / "fold_0" / "checkpoint_final.pth"
    state = net.state_dict()  # as is: a block's conv/norm appear twice in it and must keep sharing storage
    with atomic_path(path) as tmp:
        torch.save({"network_weights": state, "trainer_name": trainer,
                    "init_args": {"configuration": "3d_fullres", "fold": 0},
                    "inference_allowed_mirroring_axes": (0, 1, 2), "current_epoch": int(meta["iterations"])}, tmp)
    return path


def train(args: argparse.Namespace) -> dict:
    """Fit the part's network and write its folder under ``args.out``; returns the training log."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="train-part-") as tmp:
        return _train(args, Path(tmp), rng)


def _train(args: argparse.Namespace, tmp: Path, rng: np.random.Generator) -> dict:
    import torch

    from medseg.nnunet.network import build_network

    source = layout(tmp / "home")
    data, target, names = training_case(source, args.ct, args.labels, tmp)
    out = part_folder(args.out)
    staging = tmp / "part"
    shutil.copytree(source, staging)
    plans = json.loads((staging / "plans.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    patch = config["patch_size"]
    x, y, back = padded(data, target, patch)
    classes = np.array([v for v in np.unique(target) if v > 0])
    heads = len(names)
    net = build_network(config, 1, heads)
    if args.resume:  # go on from the cached stand-in's weights (a fresh optimiser and schedule)
        previous = torch.load(out / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=True)
        net.load_state_dict(previous["network_weights"])
        before = json.loads((out / "train_log.json").read_text())
        log.info("resuming from %s (%d iterations)", out, before["iterations"])
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    crop = [min(args.crop, p) for p in patch]
    log.info("scan %s -> %s, %d classes present, %d heads, crop %s", data.shape[1:], tuple(x.shape[1:]),
             len(classes), heads, crop)
    start, history = time.perf_counter(), []
    it = 0
    for it in range(1, args.iterations + 1):
        done = max((it - 1) / args.iterations, (time.perf_counter() - start) / (60 * args.minutes))
        if done >= 1:
            it -= 1
            break
        for group in opt.param_groups:
            group["lr"] = args.lr * (1 - done) ** 0.9  # nnU-Net's poly schedule, over iterations or time
        xb, yb = sample_crop(x, y, crop, rng, classes, args.foreground)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = net(xb)
        loss, ce = loss_fn(logits.float(), yb, heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(round(loss.item(), 4))
        if it % 10 == 0 or it == 1:
            log.info("it %d  loss %.4f  ce %.4f  %.1fs", it, history[-1], ce, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    report = evaluate(net, x, y, back, names)
    total = it + (before["iterations"] if args.resume else 0)
    meta = {"iterations": total, "iterations_this_run": it, "bf16_autocast": args.bf16, "seconds": round(seconds, 1), "crop": crop, "lr": args.lr, "seed": args.seed,
            "threads": args.threads, "ct": str(args.ct), "labels": str(args.labels), "loss_first_10": history[:10],
            "loss_last_10": history[-10:], "fit": report}
    save_checkpoint(net, staging, out.name.split("__")[0], meta)  # the trainer of the model folder's name
    (staging / "train_log.json").write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), out)
    log.info("wrote %s", out)
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=EXAMPLES / "example_ct.nii.gz")
    parser.add_argument("--labels", type=Path, default=EXAMPLES / "example_seg_fast_force_split.nii.gz",
                        help="TotalSegmentator's 3 mm (--fast --ml) label map of --ct")
    parser.add_argument("--out", type=Path, default=standins_root(), help="root of the cached part folders")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=25.0, help="stop after this much training time")
    parser.add_argument("--crop", type=int, default=64, help="crop edge in voxels (capped at the patch)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--foreground", type=float, default=0.5,
                        help="share of crops centred on a voxel of a random present class")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false",
                        help="train in fp32 (default: bf16 autocast, ~2x faster on CPUs with AVX512-BF16)")
    parser.add_argument("--resume", action="store_true", help="start from the cached stand-in's weights")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    meta = train(args)
    print(json.dumps({"out": str(part_folder(args.out)), **{k: meta[k] for k in ("iterations", "seconds")},  # noqa: T201
                      **{k: v for k, v in meta["fit"].items() if k != "dice"}}), flush=True)


if __name__ == "__main__":
    main()
