"""Start-up of one ``medseg`` command: wall and CPU seconds from process start to its first sliding window.

Runs the CLI in this process; the first call of nnU-Net's window loop (``medseg.nnunet.sliding.predict_logits``:
nnU-Net folders, TotalSegmentator) or of medseg's engine (``medseg.inference.sliding_window.
sliding_window_labels``: the zoo's models and the default nnU-Net path) prints one JSON line to stderr and
ends the process. Run it from outside the checkout's root only with ``PYTHONPATH`` set (as ``python -m``
would import the current folder's medseg)::

    T0=$(date +%s.%N) PYTHONPATH=$PWD nice -n 10 python benchmarks/e2e/first_window.py predict CT.nii.gz \\
        -o /tmp/seg.nii.gz --model totalsegmentator:total_fast

``wall_s`` counts from ``$T0`` (seconds since the epoch, taken just before starting Python) when given, else
from the process's start time (``/proc``, 10 ms resolution); ``cpu_s`` is this process's user + system time;
``monai`` says whether MONAI was imported by then.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import resource
import sys
import time

TARGETS = {"medseg.nnunet.sliding": "predict_logits", "medseg.inference.sliding_window": "sliding_window_labels"}


def _elapsed() -> float:
    """Seconds since ``$T0``, else since this process started (``/proc``: both clocks count from boot)."""
    if "T0" in os.environ:
        return time.time() - float(os.environ["T0"])
    ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
    uptime = float(open("/proc/uptime").read().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def _report(*_args, **_kwargs):
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall_s": round(_elapsed(), 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                      "monai": "monai" in sys.modules}), file=sys.stderr, flush=True)
    os._exit(0)


class _Hook(importlib.abc.MetaPathFinder):
    """Replaces the window function of each target module right after the module is executed (before any
    ``from ... import`` of it elsewhere), without importing anything ahead of the command."""

    def find_spec(self, name, path, target=None):
        if name not in TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            setattr(module, TARGETS[name], _report)

        spec.loader.exec_module = exec_module
        return spec


if __name__ == "__main__":
    sys.meta_path.insert(0, _Hook())
    sys.path = [p for p in sys.path if os.path.abspath(p) != os.path.dirname(os.path.abspath(__file__))]
    sys.argv = ["medseg", *sys.argv[1:]]
    from medseg.cli.main import run

    run()
    print(json.dumps({"wall_s": None, "cpu_s": None, "note": "no window ran"}), file=sys.stderr)
