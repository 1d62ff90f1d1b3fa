"""Run TotalSegmentator itself (a peer environment's python) and medseg on the same stand-in part folders.

Used by tests/totalseg/test_peer.py and benchmarks/totalseg_parity.py. TotalSegmentator runs through its
Python API in a subprocess with ``TOTALSEG_HOME_DIR`` set to the stand-in home (its ``config.json`` turns
usage statistics off, and every folder it asks for is there, so it downloads nothing), ``device="cpu"``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT.parent / "shared" / "data" / "totalsegmentator_example"
CANDIDATES = ("/work/venv-ts2/bin/python", "/work/venv-totalseg/bin/python")

# nnU-Net's trainer lookup imports every trainer module; its Primus trainers import timm, which a
# TotalSegmentator install may lack (it needs torchvision). TotalSegmentator never uses them: when timm
# cannot be imported, any ``timm.*`` import in the peer process yields an empty module (sitecustomize, so
# nnU-Net's worker processes get it too). Nothing else of the peer is touched.
SHIM = textwrap.dedent('''
    import importlib.abc, importlib.machinery, importlib.util, sys, types

    class _Absent:
        def __init__(self, *a, **k):
            raise RuntimeError("timm is not installed")

    class _TimmStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name == "timm" or name.startswith("timm."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):
            m = types.ModuleType(spec.name)
            m.__path__ = []
            def _get(attr):
                if attr.startswith("__"):
                    raise AttributeError(attr)
                return _Absent
            m.__getattr__ = _get
            return m

        def exec_module(self, module):
            pass

    try:
        import timm.layers  # noqa: F401
    except Exception:
        for key in [k for k in sys.modules if k == "timm" or k.startswith("timm.")]:
            del sys.modules[key]
        sys.meta_path.insert(0, _TimmStub())
''')

RUNNER = textwrap.dedent('''
    import json, sys, time
    if __name__ == "__main__":
        from totalsegmentator.python_api import totalsegmentator
        args = json.loads(sys.argv[1])
        t = time.perf_counter()
        totalsegmentator(args["input"], args["output"], ml=True, fast=args["fast"], roi_subset=args["roi_subset"],
                         device="cpu", quiet=args.get("quiet", True), nr_thr_resamp=1,
                         nr_thr_saving=1)
        print(json.dumps({"seconds": time.perf_counter() - t}))
''')


def peer_python() -> str | None:
    """A python that imports totalsegmentator: $MEDSEG_TOTALSEG_PYTHON, else the project's peer venvs."""
    for candidate in [os.environ.get("MEDSEG_TOTALSEG_PYTHON"), *CANDIDATES]:
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import importlib.util as u; "
                                    "print(u.find_spec('totalsegmentator') is not None)"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() == "True":
                return candidate
    return None


def prepare_home(home: Path, tasks=("total", "total_fast", "total_fastest"),
                 patch: tuple[int, int, int] = (64, 64, 32)) -> Path:
    """Stand-in part folders (real folder names and label sets, seeded random networks) and a config.json
    with usage statistics off; the shim for the peer in ``home/shim``."""
    from tests.totalseg._parts import make_task

    for task in tasks:
        make_task(home, task, patch=patch)
    config = home / "config.json"
    if not config.exists():
        config.write_text(json.dumps({"totalseg_id": "medseg-parity", "send_usage_stats": False,
                                      "prediction_counter": 0, "statistics_disclaimer_shown": True}))
    (home / "shim").mkdir(exist_ok=True)
    (home / "shim" / "sitecustomize.py").write_text(SHIM)
    (home / "run_totalseg.py").write_text(RUNNER)
    return home


def run_totalsegmentator(python: str, home: Path, ct: Path, out: Path, *, fast: bool,
                         roi_subset: list[str] | None = None, timeout: int = 1800) -> float:
    """TotalSegmentator's API on ``ct`` -> ``out`` (multilabel); returns its wall time in seconds."""
    env = {**os.environ, "TOTALSEG_HOME_DIR": str(home), "PYTHONPATH": str(home / "shim")}
    for key in ("nnUNet_results", "TOTALSEG_WEIGHTS_PATH"):  # found through TOTALSEG_HOME_DIR only
        env.pop(key, None)
    args = json.dumps({"input": str(ct), "output": str(out), "fast": fast, "roi_subset": roi_subset})
    done = subprocess.run([python, str(home / "run_totalseg.py"), args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(home))
    if done.returncode != 0:
        raise RuntimeError(f"TotalSegmentator failed ({done.returncode}): {done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def run_medseg(home: Path, ct: Path, out: Path, *, task: str, labels: list[str] | None = None,
               exact: bool = False) -> float:
    """medseg's standard path (``medseg predict --model totalsegmentator:TASK``) -> ``out``; wall seconds."""
    from medseg import api
    from medseg.totalseg.standard import build_totalseg_predictor

    t = time.perf_counter()
    predictor = build_totalseg_predictor(f"totalsegmentator:{task}", weights_dir=home / "nnunet" / "results",
                                         labels=labels, exact=exact)
    summary = api.predict_files([ct], out, predictor=predictor)
    failure = summary.single_failure()
    if failure is not None:
        raise failure
    return time.perf_counter() - t


def compare(theirs: Path, ours: Path) -> dict:
    """Voxel agreement of the two multilabel maps, and whether label IDs present and embedded names agree."""
    import nibabel as nib

    from medseg.reports.labels import embedded_label_names

    a = np.asarray(nib.load(theirs).dataobj)
    b = np.asarray(nib.load(ours).dataobj)
    names_a, names_b = embedded_label_names(theirs), embedded_label_names(ours)
    return {"agreement": round(float((a == b).mean()), 6) if a.shape == b.shape else 0.0,
            "same_shape": a.shape == b.shape,
            "ids_theirs": int(len(np.unique(a))) - 1, "ids_ours": int(len(np.unique(b))) - 1,
            "same_ids_present": sorted(np.unique(a).tolist()) == sorted(np.unique(b).tolist()),
            "same_names": names_a == names_b, "names": len(names_a)}


def auto_subset(home: Path, ct: Path, count: int = 4) -> list[str]:
    """A --roi_subset the stand-in 6 mm model finds on ``ct`` (random networks paint arbitrary classes): the
    classes with the smallest boxes (so the crop cuts) and the most voxels, half each."""
    from medseg.io import read_image
    from medseg.totalseg import pipeline
    from medseg.totalseg.tasks import locate, parse_task

    image = read_image(ct)
    coarse = pipeline.predict(locate(parse_task("totalsegmentator:total_fastest"), home / "nnunet" / "results"),
                              6.0, image.as_tensor().numpy()[0], image.affine.numpy(), source=ct)
    values = [int(v) for v in np.unique(coarse.labels) if v]
    size = {v: np.prod([b.stop - b.start for b in pipeline.crop_box(coarse.labels == v, image.affine.numpy())])
            for v in values}
    voxels = {v: int((coarse.labels == v).sum()) for v in values}
    chosen = sorted(values, key=size.get)[: count // 2]
    chosen += [v for v in sorted(values, key=voxels.get, reverse=True) if v not in chosen][: count - len(chosen)]
    return [coarse.names[v] for v in chosen]


def parity(python: str, home: Path, ct: Path, work: Path, mode: str, labels: list[str] | None = None) -> dict:
    """One comparison: ``mode`` is total (1.5 mm, five parts) or fast (3 mm); ``labels`` a --roi_subset
    (``["auto"]``: :func:`auto_subset`)."""
    work.mkdir(parents=True, exist_ok=True)
    if labels == ["auto"]:
        labels = auto_subset(home, ct)
    tag = f"{ct.name.split('.')[0]}_{mode}{'_subset' if labels else ''}"
    theirs = work / f"{tag}_totalseg.nii.gz"
    t_theirs = run_totalsegmentator(python, home, ct, theirs, fast=mode == "fast", roi_subset=labels)
    task = "total_fast" if mode == "fast" else "total"
    row: dict = {"case": ct.name, "mode": mode, "labels": labels, "totalseg_s": round(t_theirs, 1)}
    for exact in (True, False):
        ours = work / f"{tag}_medseg{'_exact' if exact else ''}.nii.gz"
        seconds = run_medseg(home, ct, ours, task=task, labels=labels, exact=exact)
        result = compare(theirs, ours)
        key = "exact" if exact else "default"
        row[f"{key}_agreement"] = result.pop("agreement")
        row[f"{key}_s"] = round(seconds, 1)
        row.update({f"{key}_{k}": v for k, v in result.items()})
    return row


if __name__ == "__main__":  # pragma: no cover - manual use
    sys.exit("use benchmarks/totalseg_parity.py")
