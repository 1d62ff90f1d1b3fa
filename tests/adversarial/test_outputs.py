"""Output locations (issue 16, item 11, and the evaluate --report errors of item 13): a full disk or a
read-only folder is one line naming the real output path, exit 2, nothing half-written, and found before
the model runs; hidden temp files of a killed run are cleaned on the next run."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from medseg.core import atomic
from medseg.inference.predictor import Predictor
from tests.adversarial._probe import (
    assert_one_line_error,
    leftovers,
    model_args,
    run,
    scan,
    snapshot,
)


def _failing_replace(monkeypatch, code: int, suffix: str):
    """``os.replace`` fails with ``code`` for final names ending in ``suffix`` (as a full disk would)."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith(suffix):
            raise OSError(code, os.strerror(code), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(("code", "suffix", "words"), [
    (errno.ENOSPC, "seg.nii.gz", "no space left"),       # the label map
    (errno.EROFS, "seg.json", "read-only"),              # the provenance sidecar
    (errno.ENOSPC, "seg_stats.csv", "no space left"),    # the statistics
    (errno.EDQUOT, "seg_stats.json", "quota"),
])
def test_write_failure_anywhere_is_one_line_naming_the_output(tmp_path, monkeypatch, capsys, code, suffix, words):
    x, args = scan(tmp_path / "in" / "x.nii.gz"), model_args(tmp_path)
    before = snapshot(tmp_path / "in")
    _failing_replace(monkeypatch, code, suffix)
    out = tmp_path / "out"
    status, _, err = run(monkeypatch, capsys, "predict", x, "-o", out / "seg.nii.gz", "--stats", *args)
    assert_one_line_error(status, err, [out / suffix, words])
    assert snapshot(tmp_path / "in") == before
    assert not (out / "seg.json").exists()       # no sidecar: the case is not taken as complete
    assert not leftovers(tmp_path)


def test_a_batch_stops_at_a_full_disk_instead_of_failing_every_case(tmp_path, monkeypatch, capsys):
    for i in range(3):
        scan(tmp_path / "in" / f"c{i}.nii.gz", seed=i)
    args = model_args(tmp_path)
    calls = []
    real_predict = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, *a, **k: calls.append(1) or real_predict(self, *a, **k))
    _failing_replace(monkeypatch, errno.ENOSPC, ".nii.gz")
    status, _, err = run(monkeypatch, capsys, "predict", tmp_path / "in", "-o", tmp_path / "out", *args)
    assert_one_line_error(status, err, [tmp_path / "out" / "c0.nii.gz", "no space left"])
    assert len(calls) == 1 and not leftovers(tmp_path)


@pytest.mark.parametrize("problem", ["read-only", "no space"])
def test_unwritable_output_folder_is_found_before_the_model_runs(tmp_path, monkeypatch, capsys, problem):
    x, args = scan(tmp_path / "in" / "x.nii.gz"), model_args(tmp_path)
    monkeypatch.setattr(Predictor, "predict", lambda *a, **k: pytest.fail("the model ran"))
    if problem == "read-only":
        real = atomic.tempfile.mkstemp

        def mkstemp(*a, dir=None, **k):
            if str(dir).startswith(str(tmp_path / "out")):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), dir)
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp)
    else:
        monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**6, used=10**6,
                                                                                      free=100))
    status, _, err = run(monkeypatch, capsys, "predict", x, "-o", tmp_path / "out" / "seg.nii.gz", *args)
    assert_one_line_error(status, err, [tmp_path / "out", "read-only" if problem == "read-only" else "MiB free"])
    assert not [p for p in tmp_path.joinpath("out").rglob("*") if p.is_file()]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_files_of_a_killed_run_are_cleaned_and_live_ones_kept(tmp_path, monkeypatch, capsys):
    x, args = scan(tmp_path / "in" / "x.nii.gz"), model_args(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f".seg.nii.gz.{_dead_pid()}-{atomic.HOST}.k3j2h1.tmp.nii.gz"    # killed mid-write
    dead.write_bytes(b"half a label map")
    staging = out / f".seg.{_dead_pid()}-{atomic.HOST}.abc123.tmp"                # a per-class folder being built
    staging.mkdir()
    (staging / "liver.nii.gz").write_bytes(b"x")
    live = out / f".other.nii.gz.{os.getpid()}-{atomic.HOST}.zz9.tmp.nii.gz"       # a writer still running
    live.write_bytes(b"in progress")
    foreign_new = out / ".seg.nii.gz.123-otherhost.q1.tmp.nii.gz"                 # another machine, recent
    foreign_new.write_bytes(b"x")
    foreign_old = out / ".seg.nii.gz.123-otherhost.q2.tmp.nii.gz"                 # another machine, long gone
    foreign_old.write_bytes(b"x")
    unowned_old = out / ".seg.nii.gz.k2j4h5g6.tmp.nii.gz"                          # older medseg: no pid in it
    unowned_old.write_bytes(b"x")
    unowned_new = out / ".seg.json.a1b2c3d4.tmp.json"
    unowned_new.write_bytes(b"x")
    old = time.time() - 2 * atomic.UNOWNED_TEMP_AGE_S
    os.utime(foreign_old, (old, old))
    os.utime(unowned_old, (old, old))
    user_file = out / ".notes.tmp"                                                # not our pattern: never touched
    user_file.write_text("mine")
    status, _, err = run(monkeypatch, capsys, "predict", x, "-o", out / "seg.nii.gz", *args)
    assert status == 0, err
    assert not dead.exists() and not staging.exists() and not foreign_old.exists() and not unowned_old.exists()
    assert live.exists() and foreign_new.exists() and unowned_new.exists() and user_file.exists()
    assert (out / "seg.nii.gz").is_file()


@pytest.mark.parametrize("where", ["existing file", "under a file"])
def test_evaluate_report_onto_a_file_is_one_line(tmp_path, monkeypatch, capsys, where):
    a = scan(tmp_path / "a.nii.gz")
    blocker = tmp_path / "report.txt"
    blocker.write_text("keep me")
    report = blocker if where == "existing file" else blocker / "sub"
    before = snapshot(tmp_path)
    status, _, err = run(monkeypatch, capsys, "evaluate", a, a, "--report", report, "--threshold", "1", "-j", "1")
    assert_one_line_error(status, err, [report, "--report"])
    assert snapshot(tmp_path) == before


def test_evaluate_json_onto_a_folder_is_one_line(tmp_path, monkeypatch, capsys):
    a = scan(tmp_path / "a.nii.gz")
    status, _, err = run(monkeypatch, capsys, "evaluate", a, a, "--json", tmp_path, "--threshold", "1", "-j", "1")
    assert_one_line_error(status, err, [tmp_path, "--json"])


def test_a_writer_that_hides_a_full_disk_in_a_runtime_error_still_names_the_output(tmp_path, monkeypatch, capsys):
    x, args = scan(tmp_path / "in" / "x.nii.gz"), model_args(tmp_path)
    from medseg.inference import outputs

    def sitk_like_write(*a, **k):  # SimpleITK: "Could not write ..." as a RuntimeError, no errno
        monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: SimpleNamespace(total=1, used=1, free=0))
        raise RuntimeError("itk::ERROR: ImageFileWriter: Could not write file")

    monkeypatch.setattr(outputs, "write_image", sitk_like_write)
    status, _, err = run(monkeypatch, capsys, "predict", x, "-o", tmp_path / "out" / "seg.nrrd", *args)
    assert_one_line_error(status, err, [tmp_path / "out" / "seg.nrrd", "no space left"])
    assert not leftovers(tmp_path)


def test_full_disk_in_a_per_class_folder_names_the_mask_not_the_staging_folder(tmp_path, monkeypatch, capsys):
    x, args = scan(tmp_path / "in" / "x.nii.gz"), model_args(tmp_path)
    _failing_replace(monkeypatch, errno.ENOSPC, "low.nii.gz")
    status, _, err = run(monkeypatch, capsys, "predict", x, "-o", tmp_path / "out", "--output-type", "per-class",
                         *args)
    line = assert_one_line_error(status, err, [tmp_path / "out" / "x" / "low.nii.gz", "no space left"])
    assert ".tmp" not in line and not leftovers(tmp_path)
