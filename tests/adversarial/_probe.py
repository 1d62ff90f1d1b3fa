"""Shared probe helpers for lost-cli's adversarial tests: run the real CLI entry in-process and check the
promise "exit 2, one line naming the file, no traceback, inputs untouched, nothing half-written"."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main as cli_main
from medseg.io import write_image
from tests.inference._models import (
    WEIGHTS_FILE,
    noise_volume,
    register_threshold,
    weights_bytes,
)


def model_args(tmp_path: Path) -> list[str]:
    """CLI options for the exact threshold test model (weights in ``tmp_path/weights``)."""
    name = register_threshold()
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / WEIGHTS_FILE).write_bytes(weights_bytes())
    return ["--model", name, "--weights-dir", str(weights), "--device", "cpu", "--threads", "1",
            "--backend", "torch"]


def scan(path: Path, shape=(10, 12, 8), seed: int = 0) -> Path:
    """A tiny float32 volume at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(noise_volume(shape, np.random.default_rng(seed))[None], path, affine=np.eye(4))
    return path


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``medseg ARGS`` through the console-script entry; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["medseg", *map(str, args)])
    logger = logging.getLogger("medseg")   # the CLI reroutes medseg's logging: undo that for later tests
    saved = list(logger.handlers), logger.propagate, logger.level
    try:
        with pytest.raises(SystemExit) as info:
            cli_main.run()
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate = saved[1]
        logger.setLevel(saved[2])
    out = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out.out, out.err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(code: int, err: str, names: str | Path | list) -> str:
    """Exit 2, exactly one non-empty stderr line, no traceback, mentioning every one of ``names``."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for name in names if isinstance(names, list) else [names]:
        assert str(name) in " ".join(err.split()), err
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Hidden temp files, staging folders or claim files under ``folder``."""
    return [str(p) for p in folder.rglob(".*") if ".tmp" in p.name or p.name.endswith((".lock", ".break"))]
