"""DICOM series built with medseg's own writer, the threshold model on the CLI, and dciodvfy."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.inference._models import WEIGHTS_FILE, register_threshold, weights_bytes

pytest.importorskip("highdicom", reason="the dicom extra (highdicom) is not installed")

DCIODVFY = shutil.which("dciodvfy")


def make_series(folder: Path, volume: np.ndarray, affine: np.ndarray, modality: str = "CT") -> Path:
    """A DICOM series folder (one file per slice) from a (x, y, z) volume."""
    from medseg.io.dicom import write_dicom_series

    folder.mkdir(parents=True)
    write_dicom_series(volume[None], affine, folder, modality=modality)
    return folder


def model_args(tmp_path: Path) -> list[str]:
    """CLI options for the fixed threshold model (labels: background, low, high)."""
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / WEIGHTS_FILE).write_bytes(weights_bytes())
    return ["--model", register_threshold(), "--weights-dir", str(weights), "--device", "cpu", "--threads", "1",
            "--backend", "torch", "--no-tta"]


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for ``path`` ([] when dciodvfy is not installed)."""
    if DCIODVFY is None:
        return []
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.count_nonzero(a & b)) / total


def one_line_error(result) -> str:
    """The CLI's output for a usage error: exactly one non-empty line."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]

