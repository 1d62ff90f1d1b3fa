"""SAUNA soft labels vs hard labels: the same model, the same data and the same budget (issue 8).

Retina (2D, thin structures): a small MONAI UNet on CHASE_DB1 (green channel + CLAHE, half resolution),
trained on children 01-10 and tested on children 11-14 against the 1st observer (the 2nd observer gives
the human level), then tested unchanged on HRF (external, 1/6 resolution, inside the FOV). Three arms,
identical initialisation, patches and augmentation:

* ``hard``      sigmoid output, Dice + BCE on the 0/1 mask (the usual recipe);
* ``hard_pm1``  tanh output, SAUNA's loss (focal-L1 + signed JML) on hard +-1 targets (isolates the labels);
* ``sauna``     tanh output, SAUNA's loss on SAUNA soft labels (medseg.transforms.sauna).

Hippocampus (3D): STU-Net-T (width 8) through ``medseg.training.fit`` with ``train.target = "labels"`` (nnU-Net SGD
and AdamW 1e-4) vs ``"sauna"`` (AdamW 1e-4, the paper's optimizer), 40 training / 20 validation cases;
``--hippo-arms`` picks other arms (AdamW 3e-4, the focal-L1 ``pos_weight``, the JML weight).

Metrics: Dice, clDice (skeleton-based, skimage), HD95 (pixels at the working resolution), and the
expected calibration error (15 equal-width bins over all pixels, foreground probability; for tanh
outputs p = (y + 1) / 2). Masks: p > 0.5 for every arm.

Run (about 20 minutes of one CPU core; the machine is shared)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_sauna.py --out /tmp/sauna.json
    ... --quick      # a smoke run: a few iterations, a few images
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


# ----------------------------------------------------------------------------------------------- data

def _green_clahe(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Green channel, area-downsampled to ``size`` (w, h), CLAHE, z-scored: float32 (H, W)."""
    from PIL import Image
    from skimage.exposure import equalize_adapthist

    green = Image.open(path).convert("RGB").getchannel("G").resize(size, Image.BOX)
    x = equalize_adapthist(np.asarray(green, np.float32) / 255.0).astype(np.float32)
    return (x - x.mean()) / max(float(x.std()), 1e-6)


def _mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Binary mask area-downsampled to ``size`` and re-thresholded at 0.5."""
    from PIL import Image

    m = np.asarray(Image.open(path).convert("L"), np.float32) / 255.0
    if m.max() <= 1.0 / 255.0 + 1e-6:      # 1-bit PNGs read as 0/1
        m = m * 255.0
    small = Image.fromarray((m > 0.5).astype(np.float32)).resize(size, Image.BOX)
    return np.asarray(small) > 0.5


def load_chase(root: Path, factor: int = 2, limit: int | None = None) -> list[dict]:
    """CHASE_DB1 at 1/``factor`` resolution with both observers; ``child`` from the name (Image_05L -> 5)."""
    cases = []
    for image in sorted((root / "images").glob("Image_*.jpg"))[:limit]:
        stem = image.stem
        w, h = 999 // factor, 960 // factor
        cases.append({"name": stem, "child": int(stem[6:8]), "image": _green_clahe(image, (w, h)),
                      "gt": _mask(root / "masks" / f"{stem}_1stHO.png", (w, h)),
                      "gt2": _mask(root / "masks_2ndHO" / f"{stem}_2ndHO.png", (w, h))})
    return cases


def load_hrf(root: Path, factor: int = 6, limit: int | None = None) -> list[dict]:
    """HRF at 1/``factor`` resolution with its FOV."""
    cases = []
    for mask in sorted((root / "masks").glob("*.tif"))[:limit]:
        stem = mask.stem
        image = next(p for p in (root / "images").iterdir() if p.stem == stem)
        size = (3504 // factor, 2336 // factor)
        cases.append({"name": stem, "image": _green_clahe(image, size), "gt": _mask(mask, size),
                      "fov": _mask(root / "fov" / f"{stem}_mask.tif", size)})
    return cases


# -------------------------------------------------------------------------------------------- metrics

def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    denom = pred.sum() + gt.sum()
    return 1.0 if denom == 0 else float(2.0 * (pred & gt).sum() / denom)


def cldice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Centreline Dice (Shit et al., CVPR 2021): harmonic mean of topology precision |S(P) & G| / |S(P)|
    and topology sensitivity |S(G) & P| / |S(G)|, S = skimage skeleton (2D or 3D)."""
    from skimage.morphology import skeletonize

    if not pred.any() or not gt.any():
        return float(pred.any() == gt.any())
    sp, sg = skeletonize(pred), skeletonize(gt)
    tprec = (sp & gt).sum() / max(sp.sum(), 1)
    tsens = (sg & pred).sum() / max(sg.sum(), 1)
    return float(0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens))


def hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """95th percentile of the symmetric surface distances (pixels); nan when one mask is empty."""
    from scipy.ndimage import binary_erosion, distance_transform_edt

    if not pred.any() or not gt.any():
        return float("nan")
    sp, sg = pred & ~binary_erosion(pred), gt & ~binary_erosion(gt)
    d_to_g, d_to_p = distance_transform_edt(~sg), distance_transform_edt(~sp)
    return float(np.percentile(np.concatenate([d_to_g[sp], d_to_p[sg]]), 95))


class Calibration:
    """Expected calibration error of foreground probabilities pooled over cases (15 equal-width bins)."""

    def __init__(self, bins: int = 15) -> None:
        self.bins = bins
        self.count = np.zeros(bins)
        self.conf = np.zeros(bins)
        self.hits = np.zeros(bins)

    def add(self, prob: np.ndarray, gt: np.ndarray) -> None:
        index = np.clip((prob * self.bins).astype(int), 0, self.bins - 1).ravel()
        self.count += np.bincount(index, minlength=self.bins)
        self.conf += np.bincount(index, prob.ravel().astype(np.float64), minlength=self.bins)
        self.hits += np.bincount(index, gt.ravel().astype(np.float64), minlength=self.bins)

    def ece(self) -> float:
        n = self.count.sum()
        seen = self.count > 0
        return float(np.sum(np.abs(self.hits[seen] - self.conf[seen])) / n)


# ------------------------------------------------------------------------------------------ 2D arms

ARMS = ("hard", "hard_pm1", "sauna")


def make_unet(seed: int) -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    return UNet(2, 1, 1, channels=(8, 16, 32, 64), strides=(2, 2, 2), num_res_units=1)


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    dice_loss = 1 - (2 * (prob * target).sum() + 1e-5) / (prob.sum() + target.sum() + 1e-5)
    return F.binary_cross_entropy_with_logits(logits, target) + dice_loss


def arm_targets(arm: str, cases: list[dict]) -> list[np.ndarray]:
    """What each arm regresses: 0/1, +-1, or the SAUNA map of the whole (downsampled) image."""
    from medseg.transforms.sauna import sauna_map

    if arm == "hard":
        return [c["gt"].astype(np.float32) for c in cases]
    if arm == "hard_pm1":
        return [np.where(c["gt"], 1.0, -1.0).astype(np.float32) for c in cases]
    return [sauna_map(c["gt"]) for c in cases]


def train_2d(arm: str, cases: list[dict], iters: int, seed: int, patch: int = 128, batch: int = 4,
             lr: float = 2e-3) -> tuple[torch.nn.Module, float]:
    """Adam with poly decay on random patches with flips / 90-degree rotations (same stream for every arm)."""
    from medseg.training.sauna_losses import SaunaLoss

    targets = arm_targets(arm, cases)
    model = make_unet(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sauna_loss = SaunaLoss()
    rng = np.random.default_rng(seed)
    started = time.time()
    model.train()
    running: list[float] = []
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr * (1 - it / iters) ** 0.9
        xs, ys = [], []
        for _ in range(batch):
            k = int(rng.integers(len(cases)))
            h, w = cases[k]["image"].shape
            r, c = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
            x = cases[k]["image"][r:r + patch, c:c + patch]
            y = targets[k][r:r + patch, c:c + patch]
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            x, y = np.rot90(x, turns), np.rot90(y, turns)
            if flip:
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(x.copy())
            ys.append(y.copy())
        x = torch.from_numpy(np.stack(xs))[:, None]
        y = torch.from_numpy(np.stack(ys))[:, None]
        logits = model(x)
        loss = dice_bce(logits, y) if arm == "hard" else sauna_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if (it + 1) % max(iters // 5, 1) == 0:
            print(f"  {arm} it {it + 1}: loss {np.mean(running):.4f}", flush=True)
            running = []
    return model, time.time() - started


@torch.no_grad()
def predict_2d(model: torch.nn.Module, arm: str, image: np.ndarray) -> np.ndarray:
    """Foreground probability (H, W): sigmoid for ``hard``, (tanh + 1) / 2 for the SAUNA-loss arms."""
    from medseg.transforms.sauna import sauna_activation, soft_to_probability

    model.eval()
    h, w = image.shape
    ph, pw = -h % 8, -w % 8
    x = F.pad(torch.from_numpy(image)[None, None], (0, pw, 0, ph), mode="reflect")
    logits = model(x)[0, 0, :h, :w]
    prob = torch.sigmoid(logits) if arm == "hard" else soft_to_probability(sauna_activation(logits))
    return prob.numpy()


def evaluate_2d(probs: list[np.ndarray], cases: list[dict], key: str = "gt") -> dict:
    cal = Calibration()
    rows = []
    for prob, case in zip(probs, cases):
        fov = case.get("fov", np.ones_like(case[key]))
        pred, gt = (prob > 0.5) & fov, case[key] & fov
        rows.append((dice(pred, gt), cldice(pred, gt), hd95(pred, gt)))
        cal.add(prob[fov], gt[fov])
    d, cl, hd = np.array(rows).T
    return {"dice": float(d.mean()), "dice_sd": float(d.std()), "cldice": float(cl.mean()),
            "hd95": float(np.nanmean(hd)), "ece": cal.ece()}


def human_level(cases: list[dict]) -> dict:
    rows = [(dice(c["gt2"], c["gt"]), cldice(c["gt2"], c["gt"]), hd95(c["gt2"], c["gt"])) for c in cases]
    d, cl, hd = np.array(rows).T
    return {"dice": float(d.mean()), "dice_sd": float(d.std()), "cldice": float(cl.mean()),
            "hd95": float(np.nanmean(hd)), "ece": float("nan")}


def run_retina(iters: int, seed: int, quick: bool) -> dict:
    limit = 6 if quick else None
    chase = load_chase(SHARED / "chase_db1", limit=None)
    train = [c for c in chase if c["child"] <= 10][:limit]
    test = [c for c in chase if c["child"] >= 11][: 2 if quick else None]
    hrf = load_hrf(SHARED / "hrf", limit=2 if quick else None)
    results = {"chase_human": human_level(test)}
    for arm in ARMS:
        model, seconds = train_2d(arm, train, iters, seed)
        chase_probs = [predict_2d(model, arm, c["image"]) for c in test]
        results[f"chase_{arm}"] = {**evaluate_2d(chase_probs, test), "train_s": seconds,
                                   "dice_2nd_obs": evaluate_2d(chase_probs, test, "gt2")["dice"]}
        results[f"hrf_{arm}"] = evaluate_2d([predict_2d(model, arm, c["image"]) for c in hrf], hrf)
        print(f"{arm}: {seconds:.0f} s; CHASE {results[f'chase_{arm}']}; HRF {results[f'hrf_{arm}']}", flush=True)
    return results


# -------------------------------------------------------------------------------------- hippocampus

HIPPO_ARMS = {  # name: (train.target, optimizer, lr, extra recipe overrides)
    "labels_sgd": ("labels", "sgd", 1e-2, ()),       # nnU-Net's SGD (the medseg default)
    "labels_adamw": ("labels", "adamw", 1e-4, ()),   # hard labels with SAUNA's optimizer
    "labels_adamw3e-4": ("labels", "adamw", 3e-4, ()),
    "sauna_adamw": ("sauna", "adamw", 1e-4, ()),     # the paper's Adam 1e-4 (with SGD 1e-2 the tanh output saturates)
    "sauna_adamw3e-4": ("sauna", "adamw", 3e-4, ()),
    # the official focal-L1 pos_weight (x w where y > 0) against the ~3 % foreground per class
    "sauna_adamw3e-4_pw10": ("sauna", "adamw", 3e-4, ("sauna.pos_weight=10",)),
    "sauna_adamw3e-4_pw30": ("sauna", "adamw", 3e-4, ("sauna.pos_weight=30",)),
    "sauna_adamw1e-4_pw10": ("sauna", "adamw", 1e-4, ("sauna.pos_weight=10",)),
    # the official code's default JML weight when the config leaves it unset (0.5), with pos_weight
    "sauna_adamw3e-4_pw10_jml05": ("sauna", "adamw", 3e-4, ("sauna.pos_weight=10", "sauna.jml_weight=0.5")),
}
DEFAULT_HIPPO_ARMS = ("labels_sgd", "labels_adamw", "sauna_adamw")


def _hippo_subset(names: list[str], folder: Path) -> Path:
    """A dataset.json listing only ``names`` (absolute paths), so validation reads only what is used."""
    meta = json.loads((SHARED / "msd_hippocampus" / "dataset.json").read_text())
    root = SHARED / "msd_hippocampus"
    meta["training"] = [{"image": str(root / "imagesTr" / f"{n}.nii.gz"), "label": str(root / "labelsTr" / f"{n}.nii.gz")}
                        for n in names]
    meta.pop("numTraining", None)
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


def run_hippocampus(iters: int, seed: int, quick: bool, arms=DEFAULT_HIPPO_ARMS) -> dict:
    """STU-Net-T (width 8) through ``medseg.training.fit``: ``train.target = "labels"`` vs ``"sauna"``."""
    import tempfile

    from monai.inferers import sliding_window_inference

    from medseg.training import fit, load_recipe
    from medseg.training.prepare import build_model_for, prepare_data
    from medseg.transforms.sauna import (
        sauna_activation,
        soft_to_mask,
        soft_to_probability,
    )

    n_train, n_val = (4, 2) if quick else (40, 20)
    names = sorted(p.name[: -len(".nii.gz")] for p in (SHARED / "msd_hippocampus" / "imagesTr").glob("*.nii.gz"))
    names = names[: n_val + n_train]
    per_epoch = 25 if quick else 50
    results = {}
    for arm in arms:
        target, optimizer, lr, extra = HIPPO_ARMS[arm]
        with tempfile.TemporaryDirectory() as tmp:
            recipe = load_recipe(None, [
                f"data.dataset='{_hippo_subset(names, Path(tmp))}'", f"data.val_cases={json.dumps(names[:n_val])}",
                "model.overrides={width = 8}", "plan.roi_size=[32, 48, 32]",
                f"train.epochs={max(iters // per_epoch, 1)}", f"train.iterations_per_epoch={per_epoch}",
                "train.batch_size=2", "train.num_workers=0", "train.threads=1", f"train.seed={seed}",
                f"train.optimizer='{optimizer}'", f"train.lr={lr}", "train.weight_decay=1e-5",
                f"train.output='{tmp}/run'", f"train.target='{target}'", *extra,
            ])
            data = prepare_data(recipe)
            val, data.val = data.val, []          # evaluated below, with calibration
            torch.manual_seed(seed)               # the same initialisation in every arm, whatever ran before
            model = build_model_for(recipe, data)
            started = time.time()
            history = fit(recipe, data=data, model=model).history
            seconds = time.time() - started
        print(f"  {arm} train loss per epoch: {[round(h['train_loss'], 4) for h in history]}", flush=True)
        model.eval()
        cal = {c: Calibration() for c in (1, 2)}
        rows = []
        with torch.no_grad():
            for case in val:
                logits = sliding_window_inference(case["image"][None], (32, 48, 32), 2, model, overlap=0.5,
                                                  mode="gaussian")[0]
                if target == "labels":
                    prob, pred = logits.softmax(0)[1:], logits.argmax(0)
                else:
                    soft = sauna_activation(logits)
                    prob, pred = soft_to_probability(soft), soft_to_mask(soft)
                gt = case["label"][0]
                row = []
                for c in (1, 2):
                    p, g = (pred == c).numpy(), (gt == c).numpy()
                    row += [dice(p, g), hd95(p, g)]
                    cal[c].add(prob[c - 1].numpy(), g)
                rows.append(row)
        rows = np.array(rows)
        hd = [float(np.nanmean(rows[:, i])) if np.isfinite(rows[:, i]).any() else float("nan") for i in (1, 3)]
        results[f"hippo_{arm}"] = {"dice_anterior": float(rows[:, 0].mean()), "hd95_anterior": hd[0],
                                   "dice_posterior": float(rows[:, 2].mean()), "hd95_posterior": hd[1],
                                   "ece_anterior": cal[1].ece(), "ece_posterior": cal[2].ece(), "train_s": seconds}
        print(f"hippocampus {arm}: {results[f'hippo_{arm}']}", flush=True)
    return results


# ---------------------------------------------------------------------------------------------- main

def print_tables(res: dict) -> None:
    print("\n| data (GT) | arm | Dice | clDice | HD95 px | ECE | Dice vs 2nd obs | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, key in [("CHASE test (1st obs)", "chase"), ("HRF external (FOV)", "hrf")]:
        for arm in ("human", *ARMS):
            r = res.get(f"{key}_{arm}")
            if r is None:
                continue
            label = "2nd observer" if arm == "human" else arm
            print(f"| {name} | {label} | {r['dice']:.3f} ± {r['dice_sd']:.3f} | {r['cldice']:.3f} | "
                  f"{r['hd95']:.1f} | {r['ece']:.4f} | {r.get('dice_2nd_obs', float('nan')):.3f} | "
                  f"{r.get('train_s', float('nan')):.0f} |")
    hard = res.get("chase_hard")
    if hard:
        for arm in ARMS[1:]:
            r = res[f"chase_{arm}"]
            print(f"CHASE {arm} / hard: Dice x{r['dice'] / hard['dice']:.3f}, clDice x{r['cldice'] / hard['cldice']:.3f}, "
                  f"ECE x{r['ece'] / hard['ece']:.2f}")
    if any(k.startswith("hippo_") for k in res):
        print("\n| hippocampus (val) | Dice ant | Dice post | HD95 ant | HD95 post | ECE ant | ECE post | train s |")
        print("|---|---|---|---|---|---|---|---|")
        for arm in HIPPO_ARMS:
            r = res.get(f"hippo_{arm}")
            if r is None:
                continue
            print(f"| {arm} | {r['dice_anterior']:.3f} | {r['dice_posterior']:.3f} | {r['hd95_anterior']:.2f} | "
                  f"{r['hd95_posterior']:.2f} | {r['ece_anterior']:.4f} | {r['ece_posterior']:.4f} | {r['train_s']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=800, help="training iterations per 2D arm (batch 4 x 128^2)")
    parser.add_argument("--hippo-iters", type=int, default=200, help="iterations per 3D arm (batch 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hippo-arms", default=",".join(DEFAULT_HIPPO_ARMS),
                        help=f"comma-separated 3D arms, from: {', '.join(HIPPO_ARMS)}")
    parser.add_argument("--skip", choices=("retina", "hippocampus"), action="append", default=[])
    parser.add_argument("--quick", action="store_true", help="smoke run: few iterations and images")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found: the benchmark needs ../shared/data")
    torch.set_num_threads(1)
    iters, hippo_iters = (10, 25) if args.quick else (args.iters, args.hippo_iters)
    res: dict = {"iters": iters, "hippo_iters": hippo_iters, "seed": args.seed}
    if "retina" not in args.skip:
        res.update(run_retina(iters, args.seed, args.quick))
    if "hippocampus" not in args.skip:
        arms = tuple(a.strip() for a in args.hippo_arms.split(",") if a.strip())
        unknown = [a for a in arms if a not in HIPPO_ARMS]
        if unknown:
            raise SystemExit(f"unknown --hippo-arms {unknown}; known: {', '.join(HIPPO_ARMS)}")
        res.update(run_hippocampus(hippo_iters, args.seed, args.quick, arms))
    print_tables(res)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
