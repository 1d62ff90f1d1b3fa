"""Wall time and peak RSS of TotalSegmentator vs ``medseg predict --model totalsegmentator`` on one CT.

Real-size stand-in networks with random weights under a temporary ``TOTALSEG_HOME_DIR``: nnU-Net's default
3d_fullres U-Net (6 stages, 32..320 features, two convs per stage, instance norm, leaky ReLU) with the patch
sizes of TotalSegmentator's folders (3 mm model 297: 112x112x128; 1.5 mm parts 291-295: 128^3), 117 classes
over the task's real folder names and label sets. Each arm runs as its own process (TotalSegmentator's
Python API from a peer environment, ``device="cpu"``; medseg's CLI), one after the other; peak RSS is the
largest sum over the process tree (TotalSegmentator's nnU-Net spawns workers), sampled every 0.1 s::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_totalseg.py [--modes fast] [--backend auto] \\
        [--ct ../shared/data/totalsegmentator_example/example_ct.nii.gz] [--peer-python PY] \\
        [--arms totalseg,medseg_first,medseg] [--limit-s SECONDS] [--log FILE]

medseg runs twice on a fresh compiled-model cache: ``medseg_first`` (the model's first run: OpenVINO compile and
the accuracy guard's check, whose verdict is remembered) and ``medseg`` (every later run), which the ratios use.

A run stopped by ``--limit-s`` is reported with ``finished: false`` and the progress lines it printed (per
part); when only TotalSegmentator was stopped, ``time_ratio_at_most`` bounds the ratio from above.
``--margins`` only explains why OpenVINO and PyTorch label the random stand-ins differently (near-ties).

``--heads trained`` (3 mm task only) puts the trained-like weights of ``benchmarks/standins/train_part.py``
(fitted to TotalSegmentator's own labels of the example CT; cached under ``$MEDSEG_STANDINS`` or
``<repo>/../standins``, not committed) into the 3 mm part instead of the random network, so the accuracy
guard and the agreement are judged on the logit margins of a trained network::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/standins/train_part.py          # once, ~25 min on 2 cores
    PYTHONPATH=$PWD nice -n 10 python benchmarks/bench_totalseg.py --modes fast --heads trained [--margins]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.totalseg._peer import EXAMPLES, compare, peer_python, prepare_home  # noqa: E402

PATCH = {"total": (128, 128, 128), "total_fast": (112, 112, 128)}


def real_size_plans(config: dict, patch: tuple[int, int, int]) -> None:
    """nnU-Net's default planner output for a CT at isotropic spacing with this patch (in place)."""
    pools = [int(np.log2(p // 4)) for p in patch]  # pool while the axis stays >= 8 voxels (nnU-Net's rule)
    stages = max(pools) + 1
    strides = [[1, 1, 1]] + [[2 if s < pools[a] else 1 for a in range(3)] for s in range(stages - 1)]
    config["patch_size"] = list(patch)
    config["architecture"]["arch_kwargs"].update({
        "n_stages": stages, "features_per_stage": [min(32 * 2 ** i, 320) for i in range(stages)],
        "kernel_sizes": [[3, 3, 3]] * stages, "strides": strides, "n_conv_per_stage": [2] * stages,
        "n_conv_per_stage_decoder": [2] * (stages - 1)})


def build_home(home: Path, mode: str, heads: str = "random") -> Path:
    """Stand-in folders with real-size networks for ``mode`` (total or total_fast): random weights with
    sharpened heads, or (``heads="trained"``) the trained stand-in's checkpoint where one is cached."""
    import tests.totalseg._parts as parts

    original = parts.plans

    def sized():
        p = original()
        real_size_plans(p["configurations"]["3d_fullres"], PATCH[mode])
        return p

    parts.plans = sized
    try:
        parts.make_task(home, mode, patch=PATCH[mode])
        # the sharpened random heads of the parity stand-ins are kept; weights otherwise PyTorch's init
    finally:
        parts.plans = original
    if heads == "trained":
        install_trained(home / "nnunet" / "results", mode)
    return prepare_home(home, tasks=())


def install_trained(results: Path, mode: str) -> None:
    """Replace the random checkpoint of every part of ``mode`` with the cached trained stand-in's, after
    checking that it was trained for exactly these plans and labels."""
    import shutil

    from benchmarks.standins.train_part import TASK, standins_root
    from medseg.totalseg.tasks import parse_task

    if mode != TASK:
        sys.exit(f"--heads trained: only the {TASK} task has a trained stand-in (benchmarks/standins/train_part.py)")
    for part in parse_task(f"totalsegmentator:{mode}").parts:
        cached, target = standins_root() / part.relative, results / part.relative
        checkpoint = cached / "fold_0" / "checkpoint_final.pth"
        if not checkpoint.is_file():
            sys.exit(f"no trained stand-in at {checkpoint}: run `PYTHONPATH=$PWD nice -n 10 python "
                     "benchmarks/standins/train_part.py` first (or set MEDSEG_STANDINS)")
        for name in ("plans.json", "dataset.json"):
            if json.loads((cached / name).read_text()) != json.loads((target / name).read_text()):
                sys.exit(f"{cached / name} differs from the benchmark's {name}: the stand-in was trained for "
                         "other plans; rerun benchmarks/standins/train_part.py")
        shutil.copyfile(checkpoint, target / "fold_0" / "checkpoint_final.pth")


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class Arm:
    """One measured command: wall seconds (or seconds until the limit stopped it), peak tree RSS, and every
    output line with the second it arrived (per-part progress of a run that did not finish)."""

    seconds: float
    peak: int
    finished: bool
    lines: list[tuple[float, str]]


def _kill_tree(pid: int) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        for p in [*proc.children(recursive=True), proc]:
            p.kill()
    except psutil.NoSuchProcess:
        pass


def measure(cmd: list[str], env: dict, cwd: Path, limit_s: float | None = None, log: Path | None = None) -> Arm:
    """Run ``cmd``; sample its tree RSS every 0.1 s; stop it (and its workers) after ``limit_s`` seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append((round(time.perf_counter() - start, 1), line.rstrip()))
            if log is not None:
                with log.open("a") as f:
                    f.write(f"{lines[-1][0]:8.1f} {lines[-1][1]}\n")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak, finished = 0, True
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if limit_s is not None and time.perf_counter() - start > limit_s:
            _kill_tree(proc.pid)
            proc.wait()
            finished = False
            break
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    reader.join(timeout=5)
    if finished and proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {[t for _, t in lines[-20:]]}")
    return Arm(seconds, peak, finished, lines)


def margins(ct: Path, task: str = "total_fast", heads: str = "random", precisions: tuple[str, ...] = ("fp32",)
            ) -> dict:
    """How far OpenVINO (each of ``precisions``) and PyTorch fp32 label the stand-in differently on the scan's
    first window, against the gap between each voxel's two best heads (near-ties of random heads, or the
    margins of the trained stand-in): logit differences, changed voxels (whole window, as the run-time guard
    compares, and the scan's voxels only) and the guard's min Dice."""
    import nibabel as nib
    import torch

    from medseg.backends.guard import compare_label_maps
    from medseg.inference.runtime import cpu_runtime
    from medseg.nnunet.predictor import NnUNetModel
    from medseg.nnunet.preprocessing import preprocess
    from medseg.nnunet.sliding import pad_to
    from medseg.totalseg.pipeline import resample_to_spacing
    from medseg.totalseg.tasks import locate, parse_task

    with tempfile.TemporaryDirectory(prefix="bench-totalseg-") as tmp:
        home = build_home(Path(tmp) / "home", task, heads)
        spec = parse_task(f"totalsegmentator:{task}")
        model = NnUNetModel.load(locate(spec, home / "nnunet" / "results")[0], folds=["0"])
        image = nib.as_closest_canonical(nib.load(ct))
        data, affine = resample_to_spacing(np.asarray(image.dataobj, dtype=np.float64), image.affine, spec.spacing_mm)
        scan = Path(tmp) / "scan_0000.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.int32), affine), scan)
        case = preprocess([scan], model.folder.plans, model.config)
        padded, back = pad_to(torch.from_numpy(case.data), model.patch)
        window = tuple(slice(0, p) for p in model.patch)
        x = padded[(None, slice(None), *window)].contiguous()
        inside = torch.zeros(padded.shape[1:], dtype=torch.bool)
        inside[back[1:]] = True
        inside = inside[window]
        with torch.inference_mode():
            ref = model.networks[0](x).float()[0]
            outs = {}
            for precision in precisions:
                run = cpu_runtime(model.networks[0], model.runtime_card(), backend="openvino", precision=precision)
                outs[precision] = run(x).float()[0]
                del run
    top = ref.topk(2, dim=0).values
    gap, labels = top[0] - top[1], ref.argmax(0)
    row: dict = {"heads": heads, "classes": int(ref.shape[0]), "logit_std": round(float(ref.std()), 3),
                 "scan_voxels_in_window": round(float(inside.float().mean()), 3)}
    for where, mask in (("window", torch.ones_like(inside)), ("scan", inside)):
        g = gap[mask]
        row[f"gap_{where}"] = {"median": round(float(g.median()), 3),
                               **{f"q{q}": round(float(g.quantile(q / 100)), 4) for q in (0.1, 1, 5)},
                               **{f"below_{t}": round(float((g < t).float().mean()), 5) for t in (0.01, 0.1, 1.0)}}
    for precision, ov in outs.items():
        diff, other = (ov - ref).abs(), ov.argmax(0)
        changed = labels != other
        window_agreement = compare_label_maps(other.numpy(), labels.numpy())
        scan_agreement = compare_label_maps(other[inside].numpy(), labels[inside].numpy())
        row[f"openvino_{precision}"] = {
            "diff_median": round(float(diff.median()), 4), "diff_max": round(float(diff.max()), 4),
            "changed_window": round(window_agreement.changed_fraction, 6),
            "changed_scan": round(scan_agreement.changed_fraction, 6),
            "min_guard_dice": round(window_agreement.min_guard_dice(), 5),
            "min_dice": round(window_agreement.min_dice, 5),
            "guard_passes": window_agreement.passes_guard(),
            "worst_labels": [{"label": k, "guard_dice": round(v, 5), "voxels": window_agreement.sizes[k] // 2,
                              "changed": window_agreement.mismatched[k]}
                             for k, v in sorted(window_agreement.guard_dice().items(), key=lambda kv: kv[1])[:3]],
            "gap_of_changed_max": round(float(gap[changed].max()), 4) if changed.any() else None,
            "gap_of_changed_median": round(float(gap[changed].median()), 4) if changed.any() else None}
    return row


PROGRESS = re.compile(r"part|Predicting|Resampling|Saving", re.IGNORECASE)


def progress_lines(arm: Arm) -> list[str]:
    """The arm's per-part progress lines (medseg's ``-v`` part log, TotalSegmentator's non-quiet messages)."""
    return [f"{t:.0f}s {text.strip()[:140]}" for t, text in arm.lines if PROGRESS.search(text)][:40]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=EXAMPLES / "example_ct.nii.gz")
    parser.add_argument("--modes", default="fast", help="fast (3 mm, one network) and/or total (1.5 mm, five)")
    parser.add_argument("--backend", default="auto", help="medseg's --backend")
    parser.add_argument("--precision", default="auto", help="medseg's --precision")
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--arms", default="totalseg,medseg_first,medseg",
                        help="which tools run, in this order: medseg_first is medseg's first run of the model "
                        "(compile into a fresh cache, guard checked and remembered), medseg a later run")
    parser.add_argument("--limit-s", type=float, default=None, help="stop an arm after this many seconds "
                        "(reported as not finished, with the progress lines it printed until then)")
    parser.add_argument("--log", type=Path, default=None, help="append every output line of both arms here")
    parser.add_argument("--heads", choices=("random", "trained"), default="random",
                        help="stand-in weights: seeded random with sharpened heads, or (3 mm task only) the trained "
                        "stand-in of benchmarks/standins/train_part.py")
    parser.add_argument("--margins", action="store_true", help="only explain the runtimes' label differences: "
                        "OpenVINO (--margin-precisions) vs PyTorch fp32 logits on one window against the top-two "
                        "gaps, changed voxels and the guard's min Dice")
    parser.add_argument("--margin-precisions", default="fp32", help="OpenVINO precisions for --margins (fp32,bf16)")
    args = parser.parse_args()
    if args.margins:
        task = "total" if args.modes == "total" else "total_fast"
        row = margins(args.ct, task, args.heads, tuple(args.margin_precisions.split(",")))
        row = {"ct": args.ct.name, "task": task, "load_avg": [round(x, 1) for x in os.getloadavg()], **row}
        print(json.dumps(row), flush=True)  # noqa: T201
        return
    python = args.peer_python or peer_python()
    if python is None:
        sys.exit("no python with totalsegmentator found (pass --peer-python or set MEDSEG_TOTALSEG_PYTHON)")
    for mode in args.modes.split(","):
        task = "total_fast" if mode == "fast" else "total"
        with tempfile.TemporaryDirectory(prefix="bench-totalseg-") as tmp:
            home = build_home(Path(tmp) / "home", task, args.heads)
            theirs, ours = Path(tmp) / "totalseg.nii.gz", Path(tmp) / "medseg.nii.gz"
            env = {**os.environ, "TOTALSEG_HOME_DIR": str(home), "PYTHONPATH": str(home / "shim")}
            for key in ("nnUNet_results", "TOTALSEG_WEIGHTS_PATH"):
                env.pop(key, None)
            spec = json.dumps({"input": str(args.ct), "output": str(theirs), "fast": mode == "fast",
                               "roi_subset": None, "quiet": False})
            env_ms = {**os.environ, "TOTALSEG_HOME_DIR": str(home), "PYTHONPATH": str(ROOT),
                      "MEDSEG_CACHE_DIR": str(Path(tmp) / "compiled")}   # the first run fills it, the next reuses

            def medseg(out: Path) -> tuple[list[str], dict, Path]:
                return ([sys.executable, "-m", "medseg", "-v", "predict", str(args.ct), "-o", str(out),
                         "--model", f"totalsegmentator:{task}", "--backend", args.backend, "--precision",
                         args.precision, "--threads", str(args.threads)], env_ms, ROOT)

            commands = {"totalseg": ([python, str(home / "run_totalseg.py"), spec], env, home),
                        "medseg_first": medseg(Path(tmp) / "medseg_first.nii.gz"), "medseg": medseg(ours)}
            arms = {}
            for name in args.arms.split(","):
                cmd, arm_env, cwd = commands[name]
                if args.log:
                    with args.log.open("a") as f:
                        f.write(f"=== {mode} {name} {time.strftime('%H:%M:%S')} load {os.getloadavg()}\n")
                arms[name] = measure(cmd, arm_env, cwd, args.limit_s, args.log)
            row = {"mode": mode, "ct": args.ct.name, "heads": args.heads, "backend": args.backend, "precision": args.precision,
                   "threads": args.threads, "load_avg": [round(x, 1) for x in os.getloadavg()]}
            for name, arm in arms.items():
                row.update({f"{name}_s": round(arm.seconds, 1), f"{name}_finished": arm.finished,
                            f"{name}_peak_rss_mb": round(arm.peak / 2**20)})
                if not arm.finished:
                    row[f"{name}_progress"] = progress_lines(arm)
            both = {"totalseg", "medseg"} <= set(arms) and all(arms[a].finished for a in ("totalseg", "medseg"))
            if both:
                ts, ms = arms["totalseg"], arms["medseg"]
                row.update({"time_ratio": round(ms.seconds / ts.seconds, 3), "rss_ratio": round(ms.peak / ts.peak, 3),
                            **{k: v for k, v in compare(theirs, ours).items() if k in ("agreement", "same_names",
                                                                                     "same_ids_present")}})
            elif {"totalseg", "medseg"} <= set(arms) and arms["medseg"].finished and not arms["totalseg"].finished:
                # TotalSegmentator stopped at the limit: its time is at least that, so the ratio at most this
                row["time_ratio_at_most"] = round(arms["medseg"].seconds / arms["totalseg"].seconds, 3)
            print(json.dumps(row), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
