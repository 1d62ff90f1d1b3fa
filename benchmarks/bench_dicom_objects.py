"""DICOM-SEG and RTSTRUCT from a real multi-organ label map: sizes, write/read times, round trip, dciodvfy.

The TotalSegmentator example CT (../shared/data/totalsegmentator_example) is written as a DICOM series with
medseg's own writer; its reference segmentation (TotalSegmentator's own labels, names from
classes_total_ct.json) is written as DICOM-SEG and RTSTRUCT on that series and read back.

    PYTHONPATH=$PWD python benchmarks/bench_dicom_objects.py [--case example_ct_sm]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from medseg.io import read_image
from medseg.io.dicom import write_dicom_series
from medseg.io.dicom_objects import read_dicom_object, write_dicom_labels

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "totalsegmentator_example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="example_ct_sm", help="example_ct_sm (with example_seg) is the default")
    args = parser.parse_args()
    image = read_image(DATA / f"{args.case}.nii.gz")
    seg = read_image(DATA / "example_seg.nii.gz")
    classes = json.loads((DATA / "classes_total_ct.json").read_text())["labels"]
    top = int(seg.max())
    names = ["background", *(str(classes.get(str(v), f"label_{v}")) for v in range(1, top + 1))]
    work = Path(tempfile.mkdtemp())
    try:
        series = work / "series"
        series.mkdir()
        write_dicom_series(image.numpy().astype(np.int16), image.affine.numpy(), series, modality="CT")
        grid = read_image(series)
        labels = seg[0].numpy().astype(np.uint8)
        present = len(np.unique(labels)) - 1
        print(f"scan {args.case}: {tuple(labels.shape)} voxels, {present} labels present of {top}")
        validator = shutil.which("dciodvfy")
        for fmt in ("dicom-seg", "rtstruct"):
            out = work / f"{fmt}.dcm"
            start = time.perf_counter()
            info = write_dicom_labels(fmt, labels, grid.affine.numpy(), series, out, names, model="reference")
            written = time.perf_counter() - start
            start = time.perf_counter()
            back, _, _ = read_dicom_object(out)
            read = time.perf_counter() - start
            dices = []
            for value in (int(v) for v in np.unique(labels) if v):
                a, b = labels == value, back == value
                dices.append(2 * np.count_nonzero(a & b) / (a.sum() + b.sum()))
            errors = "n/a (no dciodvfy)"
            if validator:
                run = subprocess.run([validator, str(out)], capture_output=True, text=True, check=False)
                errors = str(sum(line.startswith("Error") for line in (run.stdout + run.stderr).splitlines()))
            print(f"{fmt:9s} {info['bytes'] / 1e6:7.2f} MB  write+verify {written:5.1f} s  read {read:5.1f} s  "
                  f"voxel-identical {np.array_equal(back, labels)}  min Dice {min(dices):.4f}  "
                  f"dciodvfy errors {errors}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
