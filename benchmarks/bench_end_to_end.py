"""End to end, against the peers, in one run (issue 21): what a user waits for, not window time.

Sections (each a module in ``benchmarks/e2e/``, loaded when present):

- ``a`` (``small_batch.py``): 20 small MSD hippocampus MR cases in one batch: ``medseg predict`` default vs
  ``--backend torch --precision fp32`` vs nnU-Net v2's predictor on the same nnU-Net folder; seconds per case.
- ``b`` (``whole_scan.py``): one 1.5 mm abdominal CT, medseg default / ``--fast`` / torch fp32 / nnU-Net /
  MONAI's ``sliding_window_inference``; wall time and peak memory.
- ``c`` (``cold_start.py``): wall time of each light command (and of the first prediction) in a fresh process
  vs ``nnUNetv2_predict -h`` and ``TotalSegmentator -h``.
- ``gpu`` (``gpu.py``, with ``--device cuda``): windows per second of STU-Net B and Swin UNETR at 96^3,
  medseg's engine (AMP, channels-last, window batches) vs MONAI's ``sliding_window_inference``.

A section module defines ``run(args) -> dict`` and, optionally, ``add_arguments(parser)`` for its own options.

Examples::

    nice -n 10 python benchmarks/bench_end_to_end.py --sections a,c --json e2e.json
    python benchmarks/bench_end_to_end.py --device cuda            # the GPU section (skips without a GPU)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
SECTIONS = {"a": "small_batch", "b": "whole_scan", "c": "cold_start", "gpu": "gpu"}


def load_section(key: str) -> ModuleType | None:
    """The module of section ``key`` from ``benchmarks/e2e/``, or None when that file does not exist yet."""
    path = HERE / "e2e" / f"{SECTIONS[key]}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"e2e_{SECTIONS[key]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parser(modules: dict[str, ModuleType | None]) -> argparse.ArgumentParser:
    # "resolve": a section may declare a shared option again (whole_scan.py's --peer-python)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], conflict_handler="resolve",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=None,
                   help="comma-separated: a,b,c (default on cpu) or gpu (default with --device cuda)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--json", type=Path, default=None, help="write every section's results here")
    p.add_argument("--peer-python", default="/work/venv-nnunet/bin/python",
                   help="python of a venv with nnunetv2 (its nnUNetv2_* scripts sit beside it)")
    for module in modules.values():
        if module is not None and hasattr(module, "add_arguments"):
            module.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    modules = {key: load_section(key) for key in SECTIONS}
    args = parser(modules).parse_args(argv)
    wanted = (args.sections or ("gpu" if args.device == "cuda" else "a,b,c")).split(",")
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    results: dict = {"machine": {"cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
                                 "platform": platform.platform(), "python": platform.python_version()},
                     "device": args.device, "sections": {}}
    for key in wanted:
        module = modules[key]
        if module is None:
            print(f"section {key}: benchmarks/e2e/{SECTIONS[key]}.py is not there yet, skipped", flush=True)
            results["sections"][key] = {"skipped": "module missing"}
            continue
        print(f"== section {key} ({SECTIONS[key]}) ==", flush=True)
        start = time.perf_counter()
        results["sections"][key] = module.run(args)
        print(f"== section {key}: {time.perf_counter() - start:.0f} s ==", flush=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
