"""Percentile clipping before z-score for the shipped hippocampus model: same labels, robust to outliers.

For held-out MSD hippocampus validation cases (every 5th case, as in the card) this predicts each case with
the old rule (plain z-score) and the card's rule (z-score after a 0.5-99.5 percentile clip), clean and with
one voxel set to 1e5, and prints Dice vs the reference labels and vs the clean prediction.

    PYTHONPATH=$PWD python benchmarks/intensity_outliers.py --cases 8
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from medseg.core.card import Intensity
from medseg.inference.model_loading import load_model
from medseg.inference.predictor import PredictOptions, Predictor
from medseg.io import read_image

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "msd_hippocampus"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over labels 1 and 2 (1.0 where both are empty)."""
    scores = []
    for label in (1, 2):
        x, y = a == label, b == label
        total = x.sum() + y.sum()
        scores.append(1.0 if total == 0 else 2.0 * (x & y).sum() / total)
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    torch.set_num_threads(2)
    net, card, _ = load_model("stunet_t.hippocampus")
    rules = {"plain z-score": card.replace(intensity=Intensity("zscore")), "card (clip 0.5-99.5)": card}
    predictors = {k: Predictor(net, c, PredictOptions(device="cpu")) for k, c in rules.items()}
    images = sorted((args.data / "imagesTr").glob("*.nii.gz"))[4::5][: args.cases]
    rows = []
    for path in images:
        image = read_image(path).float()
        label = read_image(args.data / "labelsTr" / path.name)[0].numpy()
        hostile = image.clone()
        hostile[(0, *(s // 2 for s in hostile.shape[1:]))] = 1e5
        row = {"case": path.name}
        clean = {}
        for name, predictor in predictors.items():
            clean[name] = predictor.predict(image).labels[0].numpy()
            outlier = predictor.predict(hostile).labels[0].numpy()
            row[name] = (dice(clean[name], label), dice(outlier, label), dice(outlier, clean[name]))
        row["agree"] = dice(clean["card (clip 0.5-99.5)"], clean["plain z-score"])
        rows.append(row)
        print(row, flush=True)
    print(f"\n{len(rows)} validation cases; mean Dice (labels 1, 2):")
    for name in predictors:
        values = np.array([r[name] for r in rows])
        print(f"  {name:22s} clean vs ref {values[:, 0].mean():.4f} | outlier vs ref {values[:, 1].mean():.4f} | "
              f"outlier vs clean {values[:, 2].mean():.4f} (min {values[:, 2].min():.4f})")
    print(f"  clean predictions, card rule vs plain z-score: {np.mean([r['agree'] for r in rows]):.4f}")


if __name__ == "__main__":
    main()
