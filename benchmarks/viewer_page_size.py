"""Size of a `medseg view` page for a 512 x 512 x 300 CT (issue 22's goal: < 30 MB).

The CT is TotalSegmentator's 1.5 mm aorta CT crop (../shared/data) resampled to 512 x 512 x 300 on a
0.7 x 0.7 x 1.0 mm grid (linear) with 15 HU Gaussian noise added (noise is what real CTs have and what
defeats compression; a resampled CT without it would give a flattering figure); its aorta mask by nearest
neighbour is the label map and the reference.

    python benchmarks/viewer_page_size.py [--out /tmp/viewer_bench]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import zoom

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "totalsegmentator_example" / "aorta_ct_1p5mm"


def make_ct(out: Path) -> tuple[Path, Path]:
    ct, seg = nib.load(SOURCE / "ct_cropped.nii.gz"), nib.load(SOURCE / "aorta.nii.gz")
    array = np.asarray(ct.dataobj, dtype=np.float32)
    factors = [512 / array.shape[0], 512 / array.shape[1], 300 / array.shape[2]]
    big = zoom(array, factors, order=1)
    big += np.random.default_rng(0).normal(0, 15, big.shape).astype(np.float32)
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    affine[:3, 3] = ct.affine[:3, 3]
    scan, labels = out / "ct512.nii.gz", out / "ct512_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.round(big).astype(np.int16), affine), scan)
    nib.save(nib.Nifti1Image(zoom(np.asarray(seg.dataobj, dtype=np.uint8), factors, order=0), affine), labels)
    return scan, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/viewer_bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scan, labels = make_ct(args.out)
    page = args.out / "page.html"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medseg", "view", str(scan), str(labels), "--reference", str(labels),
                    "-o", str(page)], check=True)
    print(f"512x512x300 CT + label map + reference: page {page.stat().st_size / 1e6:.1f} MB, "
          f"written in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
