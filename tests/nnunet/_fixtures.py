"""Where the committed nnU-Net v2 fixtures are (made by tests/nnunet/make_fixtures.py) and how to read them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "model" / "plans.json").is_file()) \
        if FIXTURES.is_dir() else []


def cases(name: str) -> list[str]:
    """Held-out case names of a fixture (those nnUNetv2_predict wrote a result for)."""
    return sorted(p.name[:-7] for p in (FIXTURES / name / "expected").glob("*.nii.gz"))


def inputs(name: str, case: str) -> list[Path]:
    """The channel files of a held-out case (``CASE_0000.nii.gz`` ...)."""
    return sorted((FIXTURES / name / "inputs").glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz"))


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice_per_class(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    out = {}
    for c in sorted(set(np.unique(a)) | set(np.unique(b))):
        if c == 0:
            continue
        x, y = a == c, b == c
        out[int(c)] = float(2 * (x & y).sum() / max(x.sum() + y.sum(), 1))
    return out
