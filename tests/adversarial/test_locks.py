"""Concurrent ``predict --resume`` runs on one folder split the cases (issue 16, item 12): a claim file per
output, created atomically, with stale claims of dead processes recovered."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from medseg.core import claims
from medseg.core.atomic import HOST
from tests.adversarial._probe import scan
from tests.inference._models import WEIGHTS_FILE, weights_bytes

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import json, pathlib, sys, time
    from medseg import api
    from medseg.inference.predictor import Predictor
    from tests.inference._models import register_threshold

    scans, out, weights, ready, go = sys.argv[1:]
    real = Predictor.predict
    def slow(self, *args, **kwargs):   # a real model takes a while: make the runs overlap
        time.sleep(0.25)
        return real(self, *args, **kwargs)
    Predictor.predict = slow
    predictor = api.build_predictor(register_threshold(), device="cpu", weights_dir=weights, threads=1,
                                    backend="torch", tta=False)
    pathlib.Path(ready).touch()
    while not pathlib.Path(go).exists():
        time.sleep(0.01)
    summary = api.predict_files([scans], out, predictor=predictor, resume=True)
    print(json.dumps([r.case.name for r in summary.results if r.status == "done"]))
""")


def test_two_resumed_runs_on_one_folder_predict_each_case_exactly_once(tmp_path):
    names = [f"c{i}" for i in range(8)]
    for i, name in enumerate(names):
        scan(tmp_path / "in" / f"{name}.nii.gz", shape=(6, 6, 6), seed=i)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / WEIGHTS_FILE).write_bytes(weights_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "in"), str(tmp_path / "out"),
                                 str(tmp_path / "w"), str(tmp_path / f"ready{k}"), str(go)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{k}").exists() for k in range(2)):
        assert time.time() < deadline and all(w.poll() is None for w in workers), [w.communicate() for w in workers]
        time.sleep(0.05)
    go.touch()
    done = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        done.append(json.loads(out.strip().splitlines()[-1]))
    assert not set(done[0]) & set(done[1]), done          # no case predicted twice
    assert sorted(done[0] + done[1]) == names, done       # and none left out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{n}.nii.gz" for n in names] + [f"{n}.json" for n in names])   # no claim or temp files left


def test_a_claim_is_exclusive_until_released(tmp_path):
    out = tmp_path / "seg.nii.gz"
    first = claims.try_claim(out)
    assert first is not None and claims.try_claim(out) is None
    owner = json.loads(claims.lock_path(out).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == HOST and owner["time"] <= time.time()
    first.release()
    with claims.try_claim(out) as again:
        assert again is not None
    assert not claims.lock_path(out).exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_claims_are_recovered_and_live_ones_respected(tmp_path):
    def plant(name: str, owner: dict, age: float = 0.0) -> Path:
        lock = claims.lock_path(tmp_path / name)
        lock.write_text(json.dumps(owner))
        os.utime(lock, (time.time() - age, time.time() - age))
        return tmp_path / name

    dead_here = plant("a.nii.gz", {"pid": _dead_pid(), "host": HOST, "time": 0})
    live_here = plant("b.nii.gz", {"pid": os.getppid(), "host": HOST, "time": 0})
    other_recent = plant("c.nii.gz", {"pid": 1, "host": "elsewhere", "time": 0}, age=60)
    other_old = plant("d.nii.gz", {"pid": 1, "host": "elsewhere", "time": 0}, age=claims.STALE_AFTER_S + 60)
    garbage_old = plant("e.nii.gz", {}, age=claims.STALE_AFTER_S + 60)
    assert claims.try_claim(dead_here) is not None
    assert claims.try_claim(live_here) is None
    assert claims.try_claim(other_recent) is None
    assert claims.try_claim(other_old) is not None
    assert claims.try_claim(garbage_old) is not None


def test_a_released_claim_never_removes_a_claim_taken_over_by_another_process(tmp_path):
    out = tmp_path / "seg.nii.gz"
    mine = claims.try_claim(out)
    claims.lock_path(out).write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": 0}))  # taken over
    mine.release()
    assert claims.lock_path(out).exists()
