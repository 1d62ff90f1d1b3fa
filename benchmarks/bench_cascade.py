"""Trained cascade vs one full-resolution sliding-window model, small organs, real CT (CPU).

    # 1. train both arms (each resumable; run them in parallel, one thread each)
    python benchmarks/bench_cascade.py --train cascade --work /tmp/bench_cascade
    python benchmarks/bench_cascade.py --train full --work /tmp/bench_cascade
    # 2. evaluate: Dice/HD95, wall time, peak RSS, windows
    python benchmarks/bench_cascade.py --eval --work /tmp/bench_cascade

Data (``../shared/data/totalsegmentator_example``): the reference labels are TotalSegmentator *model
output*, not manual segmentations. Only one abdominal CT has organ labels (``example_ct``, 3 mm), so:

- training: ``example_ct`` cut along z into slabs (``--splits``, default 2 slabs at z = 90) used as
  pseudo-cases (same patient, disjoint voxels), so that stage 1 can be trained with k-fold cross-validation
  (k = number of slabs) and stage 2 on *out-of-fold* priors; labels pancreas, kidney_right, kidney_left,
  gallbladder, aorta (all other classes = background);
- evaluation (a), generalisation, aorta only: ``aorta_ct_1p5mm/ct_cropped`` (another patient, contrast
  thoracic CT at 1.5 mm, aorta mask from TotalSegmentator's aorta pipeline);
- evaluation (b), fit check only: the whole ``example_ct``, which both arms trained on. Equal accuracy here
  means the cascade learns what the full-resolution model learns, not that either generalises.

Both arms: STU-Net-T width 8 (``--width``), patch 48^3 at 3 mm, the same iterations (``--iters``, batch 2)
and settings (AdamW lr 3e-3 with poly decay, Dice+CE with deep supervision, no augmentation: a short CPU
budget, where SGD 0.01 / momentum 0.99 had learnt nothing after 160 iterations). The cascade adds stage 1
(6 mm, patch 32^3: k fold models + 1 final, ``--iters1`` each) on top; its training wall time is reported
separately. Inference: Gaussian sliding window, overlap 0.25, no TTA
(the cascade does not mirror), one thread, both through ``medseg.api.build_predictor``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medseg.io import read_image, write_image

ORGANS = {"pancreas": 7, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "aorta": 52}
SPLITS = "90"


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


def make_dataset(data: Path, work: Path, splits: str) -> Path:
    """Slab pseudo-cases of example_ct (cut at the z indices ``splits``) with the 5 organ labels (1..5),
    MSD layout with dataset.json."""
    ds = work / "dataset"
    if (ds / "dataset.json").is_file():
        return ds
    img = read_image(data / "example_ct.nii.gz")
    lab = read_image(data / "example_seg_fast_force_split.nii.gz")
    affine = np.asarray(img.affine, np.float64)
    x, y = img[0].numpy().astype(np.int16), lab[0].numpy()
    remap = np.zeros(int(y.max()) + 1, np.uint8)
    for i, value in enumerate(ORGANS.values(), start=1):
        remap[value] = i
    y = remap[y.astype(np.int64)]
    (ds / "imagesTr").mkdir(parents=True, exist_ok=True)
    (ds / "labelsTr").mkdir(exist_ok=True)
    training = []
    cuts = [0, *(int(c) for c in splits.split(",")), x.shape[2]]
    for i in range(len(cuts) - 1):
        name, z = f"slab_{i}", slice(cuts[i], cuts[i + 1])
        a = affine.copy()
        a[:3, 3] = affine[:3, :3] @ np.array([0, 0, z.start]) + affine[:3, 3]
        write_image(x[None, :, :, z], ds / "imagesTr" / f"{name}.nii.gz", affine=a, dtype="int16")
        write_image(y[None, :, :, z], ds / "labelsTr" / f"{name}.nii.gz", affine=a, dtype="uint8")
        training.append({"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz"})
    labels = {"0": "background", **{str(i): n for i, n in enumerate(ORGANS, start=1)}}
    (ds / "dataset.json").write_text(json.dumps({"name": "example_ct slabs (TotalSegmentator labels)",
                                                 "modality": {"0": "CT"}, "labels": labels, "training": training}))
    return ds


def _stage(name: str, ds: Path, out: Path, spacing: float, roi: int, iters: int, a) -> str:
    labels = "{ " + ", ".join(f'"{i}" = "{n}"' for i, n in enumerate(("background", *ORGANS))) + " }"
    epochs = max(iters // a.iters_per_epoch, 1)
    return f"""
[{name}data]
dataset = "{ds}"
labels = {labels}
val_cases = []
val_fraction = 0.0
[{name}model]
name = "stunet_t"
overrides = {{ width = {a.width}, modality = "CT" }}
[{name}plan]
auto = true
spacing = [{spacing}, {spacing}, {spacing}]
roi_size = [{roi}, {roi}, {roi}]
[{name}train]
epochs = {epochs}
iterations_per_epoch = {a.iters_per_epoch}
batch_size = 2
val_every = {epochs}
num_workers = 0
foreground_fraction = 0.5
optimizer = "adamw"
lr = {a.lr}
augmentation = "none"
threads = {a.threads}
output = "{out}"
"""


def write_recipes(ds: Path, work: Path, a) -> tuple[Path, Path]:
    (work / "cascade").mkdir(parents=True, exist_ok=True)
    cascade = work / "cascade" / "bench.toml"
    cascade.write_text(f'[cascade]\nfolds = {len(a.splits.split(",")) + 1}\nseed = 0\nmargin_mm = {a.margin}\nsigma_mm = 1.0\n'
                       f'targets = {json.dumps(list(ORGANS))}\n'
                       + _stage("stage1.", ds, work / "runs/stage1", 6.0, 32, a.iters1, a)
                       + _stage("stage2.", ds, work / "runs/stage2", 3.0, 48, a.iters, a))
    full = work / "full.toml"
    full.write_text(_stage("", ds, work / "runs/full", 3.0, 48, a.iters, a))
    return cascade, full


def train(arm: str, cascade: Path, full: Path, work: Path, a) -> None:
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if arm == "cascade":
        from medseg.cascade.train_cascade import train_cascade

        result = train_cascade(cascade, resume=True, on_stage=lambda s, st: print(f"{s}: {st}", flush=True))
        ran = result.ran
    else:
        from medseg.training import fit, load_recipe

        r = load_recipe(full)
        res = fit(r, resume=True, on_epoch=lambda row: print(f"full epoch {row['epoch']} loss {row['train_loss']:.3f}",
                                                            flush=True))
        if not (Path(r.train.output) / "best.pt").is_file():
            import shutil
            shutil.copyfile(Path(r.train.output) / "last.pt", Path(r.train.output) / "best.pt")
        ran = ["full"] if res.epochs_run else []
    seconds = time.perf_counter() - t0
    log = work / f"train_{arm}.json"
    if ran:   # a fully skipped (resumed) run keeps the first measurement
        log.write_text(json.dumps({"arm": arm, "seconds": seconds, "stages": ran, "threads": a.threads}))
    print(f"{arm}: {seconds:.0f} s ({ran})")


def _mm(value: float) -> str:
    return f"{value:6.1f}" if np.isfinite(value) else "   n/a"   # HD95 of an empty prediction


def _count_windows(net: torch.nn.Module) -> dict:
    count = {"n": 0}
    net.register_forward_pre_hook(lambda m, args: count.__setitem__("n", count["n"] + int(args[0].shape[0])))
    return count


def evaluate(cascade: Path, full: Path, data: Path, work: Path, a) -> None:
    from medseg import api
    from medseg.cascade.loader import stage_model
    from medseg.metrics.segmentation import compute_metrics
    from medseg.training import load_recipe

    torch.set_num_threads(a.threads)
    net = stage_model(load_recipe(full), work / "runs/full/best.pt")
    full_windows = _count_windows(net)
    # the cascade keeps each organ's largest component: the full-resolution arm gets the same postprocessing
    full_pred = api.build_predictor(net, device="cpu", overlap=0.25, tta=False, threads=a.threads,
                                    postprocess={"keep_largest": True})
    casc_pred = api.build_predictor(str(cascade), device="cpu", overlap=0.25, tta=False, threads=a.threads,
                                    postprocess=False)
    names = ("background", *ORGANS)
    scans = {
        "example_ct (fit check: trained on it)": (data / "example_ct.nii.gz", data / "example_seg_fast_force_split.nii.gz",
                                                  {n: v for n, v in ORGANS.items()}),
        "aorta_ct_1p5mm (independent)": (data / "aorta_ct_1p5mm/ct_cropped.nii.gz", data / "aorta_ct_1p5mm/aorta.nii.gz",
                                         {"aorta": 1}),
    }
    train_s = {arm: json.loads((work / f"train_{arm}.json").read_text())["seconds"]
               for arm in ("cascade", "full") if (work / f"train_{arm}.json").is_file()}
    print(f"training wall time (s, {a.threads} thread): {train_s}")
    rows = []
    for title, (img_path, ref_path, organs) in scans.items():
        image, ref = read_image(img_path), read_image(ref_path)[0].numpy()
        spacing = np.linalg.norm(np.asarray(image.affine)[:3, :3], axis=0)
        print(f"\n== {title}: {tuple(image.shape[1:])} at {spacing.round(2).tolist()} mm "
              f"(reference = TotalSegmentator output, not manual)")
        results = {}
        for arm, predictor in (("full", full_pred), ("cascade", casc_pred)):
            full_windows["n"] = 0
            _reset_peak()
            t0 = time.perf_counter()
            pred = predictor.predict(image)
            seconds, peak = time.perf_counter() - t0, _peak_mb()
            windows = (full_windows["n"] if arm == "full"
                       else pred.settings["counters"]["stage1_windows"] + pred.settings["counters"]["stage2_windows"])
            results[arm] = (pred.labels[0].numpy(), seconds, peak, windows, pred.settings.get("found"))
            print(f"{arm:8s} all 5 organs: {seconds:6.1f} s  peak RSS {peak:6.0f} MB  windows {windows}"
                  + (f"  found {pred.settings['found']}" if arm == "cascade" else ""))
        for organ, value in organs.items():
            k = names.index(organ)
            r = (ref == value).astype(np.uint8)
            line = {"scan": title.split(" ")[0], "organ": organ}
            for arm in ("full", "cascade"):
                m = compute_metrics((results[arm][0] == k).astype(np.uint8), r, spacing.tolist(), labels=[1])[0]
                line[arm] = (m.dice, m.hd95)
            # single-organ cascade: only this organ's ROI runs at full resolution
            casc_pred.pipeline.targets = [organ]
            _reset_peak()
            t0 = time.perf_counter()
            single = casc_pred.predict(image)
            line["single_s"], line["single_peak"] = time.perf_counter() - t0, _peak_mb()
            line["single_windows"] = single.settings["counters"]["stage2_windows"]
            casc_pred.pipeline.targets = list(ORGANS)
            line["full_s"], line["full_peak"] = results["full"][1], results["full"][2]
            rows.append(line)
            print(f"{organ:13s} Dice/HD95 full {line['full'][0]:.3f}/{_mm(line['full'][1])}  cascade "
                  f"{line['cascade'][0]:.3f}/{_mm(line['cascade'][1])}  | single-organ cascade "
                  f"{line['single_s']:5.1f} s ({line['single_windows']} stage-2 windows, peak "
                  f"{line['single_peak']:.0f} MB) vs full {line['full_s']:.1f} s: {line['full_s'] / line['single_s']:.1f}x")
    (work / "eval.json").write_text(json.dumps(rows, indent=1, default=float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/totalsegmentator_example"))
    ap.add_argument("--work", default="/tmp/bench_cascade")
    ap.add_argument("--train", choices=("cascade", "full"))
    ap.add_argument("--eval", action="store_true")
    ap.add_argument("--iters", type=int, default=480, help="iterations of stage 2 and of the full-res model")
    ap.add_argument("--iters1", type=int, default=200, help="iterations of each stage-1 model (k folds + final)")
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (poly decay), both arms")
    ap.add_argument("--iters-per-epoch", type=int, default=40)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--splits", default=SPLITS, help="z indices where example_ct is cut into slab cases "
                    "(k slabs = k folds), e.g. 72,88,100 for 4 slabs")
    ap.add_argument("--margin", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    data, work = Path(a.data), Path(a.work)
    ds = make_dataset(data, work, a.splits)
    cascade, full = write_recipes(ds, work, a)
    if a.train:
        train(a.train, cascade, full, work, a)
    if a.eval:
        evaluate(cascade, full, data, work, a)


if __name__ == "__main__":
    main()
