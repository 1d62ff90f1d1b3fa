"""Memory and time bombs (issue 16, items 4-5): tiny files whose headers claim gigabytes, and a scan whose
spacing would resample it to a billion voxels. All probes run in ONE subprocess under an address-space limit
(RLIMIT_AS), so a check that failed to stop a read would end in a MemoryError there, not on the machine.

Each probe must exit 2 with one line naming the file and the claimed shape, no traceback, peak memory far
below the claim, inputs byte-identical and no output or temp file left."""
from __future__ import annotations

import gzip
import json
import resource
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.adversarial._io_probe import nifti_header_bytes, snapshot
from tests.conftest import ROOT, SAMPLE

ADDRESS_SPACE = 4 << 30   # the probes' process may map at most 4 GB (torch + the model need ~1.5 GB)
PEAK_RSS_LIMIT = 2 << 30  # and must stay far below the gigabytes the headers claim

_DRIVER = r"""
import contextlib, io, json, resource, sys, traceback
from medseg.cli import main as cli_main
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    err, out = io.StringIO(), io.StringIO()
    code, tb = None, ""
    sys.argv = ["medseg", *argv]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            cli_main.run()
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            code, tb = "exception", traceback.format_exc()
    results[name] = {"code": code, "stderr": err.getvalue(), "traceback": tb,
                     "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
print("RESULTS" + json.dumps(results))
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _build(folder: Path) -> dict[str, list[str]]:
    """The hostile files (a few MB in all) and the command line of each probe."""
    (folder / "header_bomb.nii").write_bytes(nifti_header_bytes((1200, 1200, 1200)))        # 352 B, 6.4 GB
    (folder / "tiny_bomb.nii.gz").write_bytes(gzip.compress(nifti_header_bytes((1200, 1200, 1200))))
    zeros = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # one 64 MiB member, ~65 KB
    with open(folder / "gzip_bomb.nii.gz", "wb") as stream:   # 8 MB of gzip that inflates to 8 GiB
        stream.write(gzip.compress(nifti_header_bytes((2048, 2048, 512))))
        stream.writelines(zeros for _ in range(128))
    (folder / "bomb.mha").write_text("ObjectType = Image\nNDims = 3\nDimSize = 4000 4000 4000\n"
                                     "ElementType = MET_FLOAT\nElementSpacing = 1 1 1\nElementDataFile = LOCAL\n")
    sample = nib.load(str(SAMPLE))
    data = np.asanyarray(sample.dataobj)
    for name, mm in (("spacing_25mm", 25.0), ("spacing_1e6mm", 1e6)):
        nib.save(nib.Nifti1Image(data, np.diag([mm, mm, mm, 1.0])), str(folder / f"{name}.nii.gz"))
    out = folder.parent / "out"
    predict = ["predict", "-o", str(out) + "/", "--backend", "torch", "--device", "cpu"]
    return {
        "info_header_bomb": ["info", str(folder / "header_bomb.nii")],
        "info_tiny_gzip_bomb": ["info", str(folder / "tiny_bomb.nii.gz")],
        "info_gzip_bomb": ["info", str(folder / "gzip_bomb.nii.gz")],
        "info_itk_bomb": ["info", str(folder / "bomb.mha")],
        "predict_header_bomb": [*predict, str(folder / "header_bomb.nii")],
        "predict_gzip_bomb": [*predict, str(folder / "gzip_bomb.nii.gz")],
        "predict_25mm_spacing": [*predict, str(folder / "spacing_25mm.nii.gz")],
        "predict_1e6mm_spacing": [*predict, str(folder / "spacing_1e6mm.nii.gz")],
    }


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs") / "inputs"
    folder.mkdir()
    argv = _build(folder)
    before = snapshot(folder)
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(argv)], check=False, capture_output=True,
                          text=True, timeout=300, cwd=ROOT, preexec_fn=_limit_address_space)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS")]
    assert line, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    results = json.loads(line[0][len("RESULTS"):])
    return folder, results, before, snapshot(folder)


def _check(probes, name: str, file: str, *words: str) -> None:
    folder, results, before, after = probes
    result = results[name]
    assert result["traceback"] == "", result["traceback"]
    lines = [ln for ln in result["stderr"].splitlines() if ln.strip()]
    assert result["code"] == 2, result
    assert len(lines) == 1, lines
    assert str(folder / file) in lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result["peak_rss"] < PEAK_RSS_LIMIT
    assert after == before                             # inputs untouched, nothing written beside them
    out = folder.parent / "out"
    assert not out.exists() or not any(out.iterdir())  # no output, partial or temp file


def test_info_refuses_a_header_claiming_gigabytes_in_a_tiny_file(probes):
    _check(probes, "info_header_bomb", "header_bomb.nii", "1200x1200x1200 float32")


def test_info_refuses_a_tiny_gzip_claiming_gigabytes(probes):
    _check(probes, "info_tiny_gzip_bomb", "tiny_bomb.nii.gz", "1200x1200x1200 float32")


def test_info_refuses_a_gzip_bomb_beyond_memory(probes):
    _check(probes, "info_gzip_bomb", "gzip_bomb.nii.gz", "2048x2048x512 float32", "memory")


def test_info_refuses_an_itk_header_bomb(probes):
    _check(probes, "info_itk_bomb", "bomb.mha", "4000x4000x4000")


def test_predict_refuses_header_bombs_before_reading(probes):
    _check(probes, "predict_header_bomb", "header_bomb.nii", "1200x1200x1200 float32")
    _check(probes, "predict_gzip_bomb", "gzip_bomb.nii.gz", "2048x2048x512 float32")


def test_predict_refuses_a_scan_that_resampling_would_blow_up(probes):
    # 35x51x35 voxels of 25 mm: 875x1275x875 at the model's 1 mm
    _check(probes, "predict_25mm_spacing", "spacing_25mm.nii.gz", "875x1275x875", "windows")
    _check(probes, "predict_1e6mm_spacing", "spacing_1e6mm.nii.gz", "35x51x35 voxels become")
