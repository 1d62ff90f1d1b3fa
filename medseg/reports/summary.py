"""Per-label statistics over cases: mean, median, std, min, max and a bootstrap 95% CI of the mean."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medseg.metrics import METRICS

BOOTSTRAP_SAMPLES = 5000
BOOTSTRAP_SEED = 0

AGGREGATION = (
    "Per label over cases: mean, median, sample standard deviation (ddof=1), min, max and a 95% percentile "
    f"bootstrap confidence interval of the mean ({BOOTSTRAP_SAMPLES} resamples of the cases, seed "
    f"{BOOTSTRAP_SEED}). Cases where the label is absent from both prediction and reference count with "
    "the empty-mask values (dice 1, distances 0). Cases where exactly one of them is empty count with dice "
    "0 in the overlap scores and nsd, and are left out of the distance statistics (their distance is "
    "infinite): n gives the number of values used, n_infinite the number left out."
)


def describe(values: Sequence[float | None], *, rng_seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Statistics of the finite values (None and inf are left out and counted in ``n_infinite``)."""
    array = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    stats: dict[str, Any] = {"n": int(array.size), "n_infinite": len(values) - int(array.size)}
    if array.size == 0:
        return {**stats, "mean": None, "median": None, "std": None, "min": None, "max": None, "ci95": None}
    return {
        **stats,
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "std": float(array.std(ddof=1)) if array.size > 1 else None,
        "min": float(array.min()),
        "max": float(array.max()),
        "ci95": bootstrap_ci(array, seed=rng_seed),
    }


def bootstrap_ci(values: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean: resample cases with replacement, take the quantiles."""
    n = len(values)
    if n == 1:
        return [float(values[0]), float(values[0])]
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large case counts
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return [float(low), float(high)]


def summarize(rows: Sequence[Mapping[str, Any]], labels: Mapping[int, str]) -> dict[str, Any]:
    """Per-label block: name, case counts (empty-mask cases by kind) and statistics of every metric."""
    out: dict[str, Any] = {}
    for label, name in labels.items():
        mine = [r for r in rows if r["label"] == label]
        block: dict[str, Any] = {
            "name": name,
            "n_cases": len(mine),
            "n_both_empty": sum(r["empty_reference"] and r["empty_prediction"] for r in mine),
            "n_only_reference_empty": sum(r["empty_reference"] and not r["empty_prediction"] for r in mine),
            "n_only_prediction_empty": sum(r["empty_prediction"] and not r["empty_reference"] for r in mine),
        }
        block["n_infinite_distance"] = block["n_only_reference_empty"] + block["n_only_prediction_empty"]
        block["metrics"] = {key: describe([r[key] for r in mine]) for key in METRICS}
        out[str(label)] = block
    return out
