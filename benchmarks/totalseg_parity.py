"""Agreement of ``medseg predict --model totalsegmentator`` with TotalSegmentator's own pipeline.

Stand-in part folders (TotalSegmentator's real task folder names and per-part label sets, seeded random
networks with sharpened heads, small patches) are laid out under a temporary ``TOTALSEG_HOME_DIR``;
TotalSegmentator (its Python API, ``ml=True``, ``device="cpu"``, from a peer environment) and medseg (the
standard ``medseg predict`` path, ``--exact`` and the default engine) run on the shared example CTs. One JSON
line per comparison: voxel agreement of the multilabel maps, label IDs present, embedded names, wall times::

    PYTHONPATH=$PWD python benchmarks/totalseg_parity.py [--peer-python /work/venv-totalseg/bin/python] \\
        [--cases example_ct_sm] [--modes fast,fast_subset,total,total_subset]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.totalseg._peer import EXAMPLES, parity, peer_python, prepare_home



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=None, help="a python that imports totalsegmentator")
    parser.add_argument("--cases", default="example_ct_sm", help="comma-separated names in the examples folder")
    parser.add_argument("--modes", default="fast,fast_subset,total,total_subset")
    parser.add_argument("--labels", default="auto", help="the subset for *_subset modes (auto: classes the "
                        "stand-in 6 mm model finds on the case, so the crop and the map are not empty)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the outputs in this folder")
    args = parser.parse_args()
    python = args.peer_python or peer_python()
    if python is None:
        sys.exit("no python with totalsegmentator found (pass --peer-python or set MEDSEG_TOTALSEG_PYTHON)")
    with tempfile.TemporaryDirectory(prefix="totalseg-parity-") as tmp:
        home = prepare_home(Path(tmp) / "home")
        work = args.keep or Path(tmp) / "out"
        for case in args.cases.split(","):
            ct = EXAMPLES / f"{case}.nii.gz"
            for mode in args.modes.split(","):
                base, _, subset = mode.partition("_")
                row = parity(python, home, ct, work, base, args.labels.split(",") if subset else None)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
