"""Fit (and check) the quality calibration of the shipped model: ``python -m medseg.quality.fit``.

1. Reference: volume / component / intensity distribution per structure from the recipe's **training**
   cases (the model's frame), :func:`medseg.quality.signals.reference_statistics`.
2. Cases: the recipe's 40 **validation** cases (every 5th of ``msd_hippocampus``; the network never trained
   on them), each clean and under the degradations of :data:`medseg.quality.degrade.DEGRADATIONS` (the
   fitting cases also under ``EXTRA_FIT_DEGRADATIONS``: more bad segmentations to fit on), predicted with
   the default settings; per structure: the quality signals and the actual Dice against the reference
   label. Degradation seeds follow a case's place in the split, so ``--reverse`` runs give the same rows.
3. Split by case: validation cases 1st, 3rd, 5th, ... fit the calibration (5-fold cross-validation by case
   on them chose the features and the ridge, :data:`RIDGES`); the other 20 cases are **held out** and
   only scored.
4. Held-out figures: Spearman(predicted, actual Dice), what flagging the lowest 10 % and flagging below
   0.8 catch of the structures with actual Dice < 0.8; the out-of-domain scans of ``totalsegmentator_example``
   (CT and MR, ``--force``) must be flagged everywhere.
5. Writes the card block (``quality`` in ``medseg/data/pretrained/<weights>.json``), a CSV of every row
   and a calibration plot next to the model card in ``pretrained/``.

Needs ``../shared/data`` (or ``--data``); 360 + 140 predictions of small crops (tens of minutes on 2 shared CPU cores).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.core.log import get_logger
from medseg.quality.calibration import FEATURES, RIDGE, Calibration, feature_vector, fit, spearman
from medseg.quality.degrade import DEGRADATIONS, EXTRA_FIT_DEGRADATIONS

logger = get_logger(__name__)

MODEL = "stunet_t.hippocampus"
RECIPE = "pipelines/hippocampus/stunet_t.toml"
WEIGHTS_JSON = "medseg/data/pretrained/stunet_t_hippocampus.safetensors.json"
OUT_PREFIX = "pretrained/stunet_t_hippocampus_quality"
BAD = 0.8
RIDGES = (3.0, 10.0, 30.0, 100.0)   # cross-validated on the fitting cases only (the shipped RIDGE among them)


def _dice(pred: np.ndarray, ref: np.ndarray, value: int) -> float:
    p, g = pred == value, ref == value
    denom = int(p.sum() + g.sum())
    return 1.0 if denom == 0 else 2.0 * int((p & g).sum()) / denom


def split(data: Path) -> tuple[list[dict], list[dict]]:
    """(training cases, validation cases) of the shipped model's recipe."""
    from medseg.training.config import load_recipe
    from medseg.training.datalist import load_dataset
    from medseg.training.prepare import split_cases

    recipe = load_recipe(RECIPE)
    dataset = load_dataset(data / "msd_hippocampus")
    by_name = {c["case"]: c for c in dataset.cases}
    train, val = split_cases([c["case"] for c in dataset.cases], recipe)
    return [by_name[n] for n in train], [by_name[n] for n in val]


def reference(train: list[dict], card) -> dict[str, Any]:
    from medseg.quality.signals import reference_statistics
    from medseg.training.preprocess import load_case

    spacing = tuple(card.spacing)
    return reference_statistics((load_case(c, card) for c in train), spacing, card.labels)


def collect(predictor, cases: list[dict], names: tuple[str, ...], cache: Path | None = None,
            degradations: dict | None = None, seeds: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per (case, degradation, structure): signals and actual Dice (kept in ``cache`` after each case,
    and cases already there are not predicted again). ``seeds``: case name -> its degradations' seed base
    (default: its position in ``cases``)."""
    from monai.data import MetaTensor

    from medseg.io import read_image

    rows = json.loads(cache.read_text(encoding="utf-8")) if cache is not None and cache.is_file() else []
    done = {r["case"] for r in rows}
    for i, case in enumerate(cases):
        if case["case"] in done:
            continue
        image = read_image(case["image"])
        ref = np.asarray(read_image(case["label"]).as_tensor()[0]).round().astype(np.int64)
        base = image.as_tensor()[0].numpy().astype(np.float64)
        for name, degrade in (DEGRADATIONS if degradations is None else degradations).items():
            k = i if seeds is None else seeds[case["case"]]
            data = base if degrade is None else degrade(base, 1000 * k + len(name))
            scan = MetaTensor(torch.from_numpy(data.astype(np.float32))[None], affine=image.affine,
                              meta=dict(image.meta))
            prediction = predictor.predict(scan, path=f"{case['case']}:{name}")
            labels = np.asarray(prediction.labels[0])
            for value in range(1, len(names)):
                entry = prediction.quality[names[value]]
                rows.append({"case": case["case"], "degradation": name, "structure": names[value],
                             "dice": _dice(labels, ref, value), "signals": entry["signals"]})
        if cache is not None:
            cache.write_text(json.dumps(rows), encoding="utf-8")
        logger.info("%s: %d/%d cases", case["case"], i + 1, len(cases))
    return rows


def refresh(rows: list[dict], reference: dict[str, Any]) -> list[dict]:
    """The rows with their derived signals (comparison with ``reference``, scan-level means) recomputed from
    the raw ones, so cached rows follow the current :func:`medseg.quality.estimate.derive`."""
    from medseg.quality.estimate import derive

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["degradation"]), []).append(r)
    for group in groups.values():
        derived = derive({r["structure"]: r["signals"] for r in group}, reference)
        for r in group:
            r["signals"] = {**derived[r["structure"]], "out_of_domain": r["signals"].get("out_of_domain", [])}
    return rows


def evaluate_rows(calibration: Calibration, rows: list[dict]) -> dict[str, Any]:
    """Spearman and flag catch rates of ``calibration`` on ``rows``."""
    from medseg.quality.estimate import decide, structure_domain

    if not rows:
        return {}
    values = []   # what users get: the calibration, with the out-of-domain cap of the current rules
    for r in rows:
        s = r["signals"]
        reasons = sorted(set(s.get("out_of_domain") or []) | set(structure_domain(s)))
        p = decide({**s, "out_of_domain": reasons}, calibration, structure=r["structure"])[0]
        values.append(0.0 if p is None else p)
    predicted = np.array(values)
    for r, p in zip(rows, predicted):
        r["predicted"] = float(p)
    actual = np.array([r["dice"] for r in rows])
    bad = actual < BAD
    lowest = np.zeros(len(rows), dtype=bool)
    lowest[np.argsort(predicted, kind="stable")[: int(round(0.10 * len(rows)))]] = True   # exactly 10 %
    below = predicted < BAD
    return {"n": len(rows), "n_bad": int(bad.sum()), "spearman": round(spearman(predicted, actual), 4),
            "lowest10_caught": int((lowest & bad).sum()), "lowest10_flagged": int(lowest.sum()),
            "lowest10_most": int(min(lowest.sum(), bad.sum())),
            "below08_caught": int((below & bad).sum()), "below08_flagged": int(below.sum()),
            "below08_precision": round(float((below & bad).sum() / max(below.sum(), 1)), 4),
            "below08_recall": round(float((below & bad).sum() / max(bad.sum(), 1)), 4),
            "mae": round(float(np.abs(predicted - actual).mean()), 4)}


def cross_validate(rows: list[dict], folds: int = 5, ridge: float = RIDGE) -> dict[str, Any]:
    cases = sorted({r["case"] for r in rows})
    folds = min(folds, len(cases))
    if folds < 2:
        return {}
    predicted = np.zeros(len(rows))
    for k in range(folds):
        held = set(cases[k::folds])
        train = [r for r in rows if r["case"] not in held]
        cal = fit([feature_vector(r["signals"]) for r in train], [r["dice"] for r in train],
                  structures=[r["structure"] for r in train], ridge=ridge)
        idx = [i for i, r in enumerate(rows) if r["case"] in held]
        predicted[idx] = cal.score([feature_vector(rows[i]["signals"]) for i in idx],
                                   [rows[i]["structure"] for i in idx])   # the ranking: before isotonic ties
    actual = np.array([r["dice"] for r in rows])
    return {"folds": folds, "ridge": ridge, "spearman_of_score": round(spearman(predicted, actual), 4)}


def out_of_domain(predictor, data: Path, cache: Path | None = None) -> dict[str, Any]:
    """Signals of the TotalSegmentator example CT and MR (whole abdomen, hundreds of windows at 1 mm), run
    without TTA at overlap 0.25 to keep this minutes (kept in ``cache``: they do not depend on the
    calibration)."""
    from medseg.io import read_image

    if cache is not None and cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    out = {}
    for name in ("example_ct_sm.nii.gz", "example_mr_sm.nii.gz"):
        path = data / "totalsegmentator_example" / name
        prediction = predictor.predict(read_image(path), path=str(path))
        out[name] = {s: q["signals"] for s, q in prediction.quality.items()}
    if cache is not None:
        cache.write_text(json.dumps(out), encoding="utf-8")
    return out


def score_out_of_domain(signals: dict[str, Any], calibration: Calibration) -> dict[str, Any]:
    from medseg.quality.estimate import decide

    out: dict[str, Any] = {}
    for scan, structures in signals.items():
        out[scan] = {}
        for name, s in structures.items():
            predicted, flag = decide(s, calibration, structure=name)
            out[scan][name] = {"predicted_dice": None if predicted is None else round(predicted, 4), "flag": flag,
                               "out_of_domain": s["out_of_domain"]}
    return out


def plot(rows: list[dict], calibration: Calibration, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    clean = [r for r in rows if r["degradation"] == "clean"]
    other = [r for r in rows if r["degradation"] != "clean"]
    ax.scatter([r["predicted"] for r in other], [r["dice"] for r in other], s=9, alpha=0.6, label="degraded",
               color="#d95f02")
    ax.scatter([r["predicted"] for r in clean], [r["dice"] for r in clean], s=9, alpha=0.8, label="clean",
               color="#1b9e77")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.axvline(BAD, color="black", lw=0.6, ls=":")
    ax.axhline(BAD, color="black", lw=0.6, ls=":")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted Dice", ylabel="actual Dice",
           title="stunet_t.hippocampus: held-out cases")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--limit", type=int, default=0, help="use only the first N validation cases (a quick try)")
    parser.add_argument("--cache", type=Path, help="keep the per-structure rows in this JSON and reuse them "
                        "when it exists (refit without predicting again)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 avoids thread spinning on a "
                        "shared machine)")
    parser.add_argument("--reference-cache", type=Path, help="keep the training reference in this JSON")
    parser.add_argument("--ood-cache", type=Path, help="keep the out-of-domain scans' signals in this JSON")
    parser.add_argument("--ood-only", action="store_true", help="only predict the out-of-domain scans (cached)")
    parser.add_argument("--reverse", action="store_true", help="predict the validation cases last to first")
    parser.add_argument("--cached-only", action="store_true", help="fit and score only the cases in --cache (and "
                        "the fitting cases' extra degradations in CACHE_extra.json)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("medseg.inference").setLevel(logging.ERROR)   # forced out-of-domain scans warn by design

    from medseg import api

    t0 = time.perf_counter()
    predictor = api.build_predictor(MODEL, device="cpu", force=True, threads=args.threads)
    card = predictor.card.replace(quality={})   # signals only while fitting
    train, val = split(args.data)
    if args.reference_cache is not None and args.reference_cache.is_file():
        ref = json.loads(args.reference_cache.read_text(encoding="utf-8"))
    else:
        ref = reference(train, card)
        if args.reference_cache is not None:
            args.reference_cache.write_text(json.dumps(ref), encoding="utf-8")
    predictor.card = card.replace(quality={"reference": ref})
    seeds = {c["case"]: k for k, c in enumerate(val)}   # degradation seeds: a case's place in the split
    fit_cases = {c["case"] for c in val[0::2]}          # 1st, 3rd, ... validation case; the others held out
    if args.limit:
        val = val[: args.limit]
    if args.reverse:   # a second process can work from the other end (with its own --cache)
        val = val[::-1]
    if args.cached_only and args.cache is not None and args.cache.is_file():
        cached = {r["case"] for r in json.loads(args.cache.read_text(encoding="utf-8"))}
        val = [c for c in val if c["case"] in cached]
    if args.ood_only:
        fast = api.build_predictor(MODEL, device="cpu", force=True, tta=False, overlap=0.25, threads=args.threads)
        fast.card = predictor.card
        out_of_domain(fast, args.data, args.ood_cache)
        return 0
    rows = collect(predictor, val, predictor.label_names, args.cache, seeds=seeds)
    extra_cache = None if args.cache is None else args.cache.with_name(f"{args.cache.stem}_extra.json")
    extra = collect(predictor, [c for c in val if c["case"] in fit_cases], predictor.label_names, extra_cache,
                    degradations=EXTRA_FIT_DEGRADATIONS, seeds=seeds)
    rows = refresh(rows + extra, ref)
    fit_rows = [r for r in rows if r["case"] in fit_cases]
    held_rows = [r for r in rows if r["case"] not in fit_cases]
    calibration = fit([feature_vector(r["signals"]) for r in fit_rows], [r["dice"] for r in fit_rows],
                      structures=[r["structure"] for r in fit_rows])
    predictor.card = card.replace(quality={"reference": ref, "calibration": calibration.to_dict()})
    fast = api.build_predictor(MODEL, device="cpu", force=True, tta=False, overlap=0.25, threads=args.threads)
    fast.card = predictor.card
    held = evaluate_rows(calibration, held_rows)
    held_clean = evaluate_rows(calibration, [r for r in held_rows if r["degradation"] == "clean"])
    summary = {
        "fit": {"cases": len(fit_cases), "rows": len(fit_rows),
                "cv": [cross_validate(fit_rows, ridge=r) for r in RIDGES]},
        "held_out": held, "held_out_clean": held_clean,
        "out_of_domain": score_out_of_domain(out_of_domain(fast, args.data, args.ood_cache), calibration),
        "weights": dict(zip(FEATURES, [round(w, 4) for w in calibration.weights])),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    if args.no_write:
        return 0
    block = {"reference": ref, "calibration": {
        **calibration.to_dict(),
        "fitted_on": (f"{len(fit_cases)} of the 40 validation cases of {RECIPE} (1st, 3rd, ...), clean, "
                      f"{len(DEGRADATIONS) - 1} degradations and {len(EXTRA_FIT_DEGRADATIONS)} more "
                      "(medseg.quality.degrade); features and ridge chosen by 5-fold cross-validation by case on "
                      "them; reproduce: python -m medseg.quality.fit"),
        "held_out": {k: held[k] for k in ("n", "n_bad", "spearman", "lowest10_caught", "lowest10_flagged",
                                           "below08_caught", "below08_flagged", "mae")},
        "held_out_clean": {k: held_clean[k] for k in ("n", "n_bad", "spearman")},
    }}
    weights_json = Path(WEIGHTS_JSON)
    state = json.loads(weights_json.read_text(encoding="utf-8"))
    state["card"]["quality"] = block
    weights_json.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    with open(f"{OUT_PREFIX}.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        keys = sorted({k for r in rows for k in r["signals"] if k != "out_of_domain"})
        writer.writerow(["case", "degradation", "structure", "split", "dice", "predicted", *keys])
        for r in rows:
            part = "fit" if r["case"] in fit_cases else "held_out"
            predicted = r.get("predicted", float(calibration.predict([feature_vector(r["signals"])],
                                                                     [r["structure"]])[0]))
            writer.writerow([r["case"], r["degradation"], r["structure"], part, round(r["dice"], 4),
                             round(predicted, 4), *[r["signals"].get(k) for k in keys]])
    plot(held_rows, calibration, Path(f"{OUT_PREFIX}.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
