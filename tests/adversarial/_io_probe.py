"""Helpers for the hostile-input probes: run the CLI, snapshot a folder, check a refusal."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from medseg.cli import main as cli_main


def invoke(*args: str):
    """Run ``medseg ARGS`` in-process; returns click's Result (exit_code, stdout, stderr, exception).

    The CLI routes the ``medseg`` logger to its own handler (propagate off); that is undone afterwards so
    later tests in the same process still see log records through pytest's caplog.
    """
    logger = logging.getLogger("medseg")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        return CliRunner().invoke(cli_main.app, [str(a) for a in args])
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate, logger.level = saved[1], saved[2]


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden and temp files included), by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(result, name: str | Path, *words: str) -> None:
    """Exit code 2, one line on stderr naming the file (and ``words``), no traceback."""
    text = result.stderr if hasattr(result, "stderr") else result.output
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert result.exit_code == 2, (result.exit_code, text, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in text
    assert len(lines) == 1, lines
    assert str(name) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def nifti_header_bytes(shape, dtype=np.float32, zooms=None) -> bytes:
    """A NIfTI-1 header (+4 extension bytes) claiming ``shape`` x ``dtype``; voxel data starts at 352."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    if zooms is not None:
        header.set_zooms(zooms)
    header["vox_offset"] = 352
    affine = np.diag([*(zooms or (1.0,) * len(shape))[:3], 1.0])
    header.set_sform(affine, 1)
    header.set_qform(affine, 1)
    return header.binaryblock + b"\0" * 4


def save_nifti(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Path:
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))
    return path
