"""The wheel is complete: built with ``pip wheel``, installed (not editable) into a fresh venv, run elsewhere.

A plain venv (no system site-packages, where the editable checkout lives) gets the CPU torch wheel and then
medseg's wheel; ``medseg predict`` on the bundled sample from an empty folder must find the default model's
weights inside the installed package. Slow (a few minutes): it installs medseg's dependencies.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, *, cwd: Path, env: dict | None = None, timeout: int = 900) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _copy_tracked(dest: Path) -> None:
    """Copy the files git tracks (no build/, *.egg-info or runs/ left over from earlier builds)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=False)
    if listed.returncode != 0:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "runs"))
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_predicts_the_sample_with_the_default_model(tmp_path):
    src, dist, venv, work, home = (tmp_path / n for n in ("src", "dist", "venv", "work", "home"))
    for folder in (src, work, home):
        folder.mkdir()
    _copy_tracked(src)
    # without PYTHONPATH: pip would take the checkout's medseg.egg-info for an installed medseg and skip it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEDSEG_WEIGHTS_DIR")}
    _run([sys.executable, "-m", "pip", "wheel", src, "-w", dist, "--no-deps", "-q"], cwd=tmp_path, env=env)
    (wheel,) = dist.glob("medseg-*.whl")

    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    _run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], cwd=tmp_path, env=env)
    _run([python, "-m", "pip", "install", "-q", wheel], cwd=tmp_path, env=env)

    env["HOME"] = str(home)  # no ~/.cache/medseg/weights to fall back on
    where = _run([python, "-c", "import medseg, importlib.resources as r; print(medseg.__file__); "
                  "print(r.files('medseg') / 'data' / 'sample' / 'hippocampus_001.nii.gz')"], cwd=work, env=env)
    package_file, sample = where.split()
    assert Path(package_file).is_relative_to(venv), f"medseg imported from {package_file}, not the venv"
    assert not Path(sample).is_relative_to(ROOT)

    _run([bin_dir / "medseg", "predict", sample, "-o", "seg.nii.gz"], cwd=work, env=env)
    seg, scan = nib.load(work / "seg.nii.gz"), nib.load(sample)
    assert seg.shape == scan.shape and np.allclose(seg.affine, scan.affine)
    reference = np.asarray(nib.load(sample.replace(".nii.gz", "_label.nii.gz")).dataobj)
    labels = np.asarray(seg.dataobj)
    for value in (1, 2):  # the shipped model finds both hippocampus parts on the sample (Dice ~0.9)
        a, b = labels == value, reference == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.7
