"""``medseg`` / ``python -m medseg`` end with ``os._exit`` once the command returns (the interpreter's teardown
took 0.6 s of a 14 s prediction): what the command wrote, printed and registered to run at exit must survive,
and its exit code must be the command's."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import SimpleITK as sitk

from tests.conftest import SAMPLE_LABEL

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def _medseg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medseg", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=300, check=False)


def test_a_command_s_output_file_and_printed_lines_survive_the_prompt_exit(tmp_path):
    target = tmp_path / "label.nrrd"
    done = _medseg("convert", str(SAMPLE_LABEL), str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(target.name) in done.stdout + done.stderr
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(target))).shape == (35, 51, 35)
    listed = _medseg("models", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "stunet_t" in listed.stdout   # a table printed to a pipe is flushed whole


def test_a_failing_prediction_exits_2_promptly_with_its_worker_threads_stopped(tmp_path):
    # predict starts a thread pool before it looks at its inputs: the exit must stop its idle workers, not
    # wait on them (it hung there before the executors' own shutdown hook was run)
    done = _medseg("predict", str(tmp_path / "missing.nii.gz"), cwd=tmp_path)
    assert done.returncode == 2
    assert "missing.nii.gz" in done.stderr and "Traceback" not in done.stderr


def test_atexit_handlers_run_and_a_text_exit_code_is_printed_with_status_1(tmp_path):
    code = ("import atexit; from medseg.cli.main import prompt_exit; "
            "atexit.register(lambda: print('handler ran', flush=True)); prompt_exit('stopped: reason')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert done.stdout.strip() == "handler ran" and done.stderr.strip() == "stopped: reason"


def test_a_profiled_run_still_writes_its_profile(tmp_path):
    # cProfile writes its results in the normal teardown, which the prompt exit would skip
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "run.prof"), "-m", "medseg",
                           "--version"], capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run.prof").stat().st_size > 0
