"""Cost of the per-structure quality estimate: ``medseg predict`` time with and without it, one run.

    python benchmarks/bench_quality.py [--data ../shared/data] [--cases 10] [--repeats 3] [--threads 1]

Two predictors of the shipped model (default settings: mirror TTA, the CPU backend ``auto`` picks), one with
``quality=True`` (the default) and one with ``quality=False``, run on the same validation cases in
alternating order (with/without, then without/with), after one warm-up each. Prints the total predict time
per arm in CPU seconds of
this process (sum over cases of the median over repeats; CPU time, not wall, because the machine is shared) and the ratio with/without (goal: <= 1.1).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per predictor (1: no thread "
                        "spinning on a shared machine)")
    args = parser.parse_args()

    from medseg import api
    from medseg.io import read_image
    from medseg.quality.fit import split

    _, val = split(args.data)
    images = [read_image(c["image"]) for c in val[: args.cases]]
    arms = {"with": api.build_predictor(device="cpu", quality=True, threads=args.threads),
            "without": api.build_predictor(device="cpu", quality=False, threads=args.threads)}
    for predictor in arms.values():
        predictor.predict(images[0])  # warm-up (backend compile, caches)
    times: dict[str, list[list[float]]] = {name: [[] for _ in images] for name in arms}
    for r in range(args.repeats):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for i, image in enumerate(images):
            for name in order:
                t0 = time.process_time()   # CPU time: robust to other jobs on a shared machine
                arms[name].predict(image)
                times[name][i].append(time.process_time() - t0)
    total = {name: sum(statistics.median(t) for t in per_case) for name, per_case in times.items()}
    for name, seconds in total.items():
        print(f"{name:8s} quality: {seconds:.2f} CPU s for {len(images)} cases (median of {args.repeats} per case)")
    print(f"ratio with/without: {total['with'] / total['without']:.3f}")


if __name__ == "__main__":
    main()
