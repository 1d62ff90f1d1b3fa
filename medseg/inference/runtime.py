"""Attach a CPU runtime (OpenVINO / ONNX Runtime / PyTorch) to a model, guarded per model at run time.

The ``auto`` default (OpenVINO fp32 when ``medseg[cpu]`` is installed) was chosen from STU-Net hippocampus
measurements (``benchmarks/README.md``, "Fast CPU inference"). Other model families export differently, so
an ``auto`` choice is not trusted blindly: :class:`GuardedRuntime` also runs PyTorch fp32 on the first
window it is given, decodes both with the model's output head and keeps the compiled runtime only if every
structure's guard Dice (:meth:`medseg.backends.guard.LabelAgreement.passes_guard`: the Dice, with labels
under ``GUARD_MIN_VOXELS`` voxels judged by their changed voxels) is at least
:data:`medseg.backends.guard.GUARD_DICE`; otherwise it warns once and runs PyTorch for the rest. The
cost is bounded: only the first window of the first batch runs in both (the next windows too only while
PyTorch finds no foreground in them, at most ``GUARD_WINDOWS``), the rest of the batch then runs in the
runtime chosen, and a refused window returns the PyTorch result already computed: an accepted runtime
costs one PyTorch window per guarded network, a refused one one compiled window. An explicitly requested
backend (``--backend openvino``) is used as asked, except
``--precision int8``: it is calibrated on training scans, refused at build time when its labels differ from
fp32 on them (:mod:`medseg.backends.int8`), and guarded here on every case's first windows like ``auto``.

The verdict is remembered with the compiled model (:mod:`medseg.backends.verdict`): a runtime that passed on
an earlier run is trusted without the PyTorch window (checked again every ``RECHECK_EVERY``-th run), and one
that was refused is not loaded at all.
"""
from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from medseg.core.card import ModelCard
from medseg.core.log import get_logger
from medseg.models.heads import OutputHead, head_for

logger = get_logger(__name__)

GUARD_WINDOWS = 4   # windows run twice at most: the first, and the next only while PyTorch finds no foreground in them


class GuardedRuntime:
    """A compiled window network checked against PyTorch fp32 on its first windows (see module docstring)."""

    def __init__(self, runtime: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, head: OutputHead,
                 entry: Path | None = None) -> None:
        """``entry``: the compiled cache entry whose remembered verdict to use and update (default: the
        runtime's ``cache_path``)."""
        from medseg.backends import verdict as remembered

        self.runtime, self.model, self.head = runtime, model, head
        self.checked, self.trusted, self.min_dice = 0, True, 1.0
        self.saw_foreground = False
        self.entry = entry if entry is not None else getattr(runtime, "cache_path", None)
        self.remembered = remembered.read(self.entry)
        if self.remembered is not None and self.remembered.passed and not self.remembered.due:
            self.checked, self.min_dice = GUARD_WINDOWS, self.remembered.min_dice   # no PyTorch window this run
            self.remembered = remembered.count_run(self.entry, self.remembered)
        elif self.remembered is not None and not self.remembered.passed:
            self.min_dice = self.remembered.min_dice
            self._refuse()
        else:
            self.remembered = None   # checked on this run's first windows

    @property
    def compiled_name(self) -> str:
        """The compiled runtime that is (or was) guarded, e.g. ``openvino fp32``."""
        return f"{getattr(self.runtime, 'backend', 'compiled')} {getattr(self.runtime, 'precision', 'fp32')}"

    # What ran, for logs and the sidecar: the compiled runtime until it fails the guard, then PyTorch fp32.
    @property
    def backend(self) -> str:
        return str(getattr(self.runtime, "backend", "compiled")) if self.trusted else "torch"

    @property
    def precision(self) -> str:
        return str(getattr(self.runtime, "precision", "fp32")) if self.trusted else "fp32"

    @property
    def reason(self) -> str:
        inner = str(getattr(self.runtime, "reason", ""))
        return inner if self.trusted else f"{inner}; failed the run-time guard (guard Dice {self.min_dice:.4f})"

    def __getattr__(self, name: str):  # threads, mode, calibration... of the compiled runtime
        if name in ("threads", "mode", "calibration", "guard", "cache_path", "_fallback") and self.trusted:
            return getattr(self.runtime, name, None)
        raise AttributeError(name)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.trusted:
            return self._torch(x)
        if self.checked >= GUARD_WINDOWS:
            return self.runtime(x)
        # the first window of the batch in both runtimes (PyTorch's result is kept, never run again), then the
        # rest of the batch in whichever runtime the verdict chose
        reference = self._torch(x[:1])
        out = torch.as_tensor(self.runtime(x[:1])).float()
        self._check(out, reference)
        first = out if self.trusted else reference
        return first if x.shape[0] == 1 else torch.cat([first, torch.as_tensor(self(x[1:])).float()])

    def _torch(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.model(x.as_tensor() if hasattr(x, "as_tensor") else x)
        return (out[0] if isinstance(out, (tuple, list)) else out).float()

    def _check(self, out: torch.Tensor, reference: torch.Tensor) -> None:
        from medseg.backends import verdict as remembered
        from medseg.backends.guard import GUARD_DICE, GUARD_MIN_VOXELS, compare_label_maps

        mine, ref = self.head.decode(torch.as_tensor(out).float()), self.head.decode(reference)
        agreement = compare_label_maps(mine.numpy(), ref.numpy())
        self.min_dice = min(self.min_dice, agreement.min_guard_dice())
        self.saw_foreground = self.saw_foreground or bool((ref > 0).any())
        self.checked = GUARD_WINDOWS if self.saw_foreground else self.checked + 1
        if not agreement.passes_guard(GUARD_DICE):
            logger.warning("%s %s disagrees with PyTorch fp32 on %s (guard Dice %.4f < %.3f; labels under %d voxels "
                           "judged by changed voxels; plain min Dice %.4f): running PyTorch instead", self.backend,
                           self.precision, self.head.card.name, agreement.min_guard_dice(), GUARD_DICE,
                           GUARD_MIN_VOXELS, agreement.min_dice)
            remembered.record(self.entry, passed=False, min_dice=self.min_dice)
            self._refuse()
        elif self.saw_foreground:   # a verdict on windows with something in them: later runs skip the check
            remembered.record(self.entry, passed=True, min_dice=self.min_dice)

    def _refuse(self) -> None:
        self.trusted = False
        if not isinstance(self.runtime, _Released):
            self.runtime = _Released(self.runtime)   # free the compiled network and its buffers now

    def describe(self) -> str:
        from medseg.backends.verdict import RECHECK_EVERY

        inner = self.runtime.describe() if hasattr(self.runtime, "describe") else self.backend
        if self.remembered is not None:
            state = "PyTorch fp32 used" if not self.trusted else \
                f"next check in {RECHECK_EVERY - self.remembered.runs_since} run(s)"
            return f"{inner} [{self.remembered.describe()}; {state}]"
        state = "guarded" if self.trusted else "failed the guard, PyTorch fp32 used"
        return f"{inner} [{state}, guard Dice {self.min_dice:.4f} on the first windows]"


class _Released:
    """What a compiled runtime was (for logs and the sidecar) once the guard dropped it: the compiled network,
    its infer requests and their buffers are freed for the rest of the run (1.9 GB for a 105-class 128^3
    window, bench_nnunet case ii). Also stands for a runtime never loaded because its refusal is remembered."""

    def __init__(self, runtime: object) -> None:
        self.backend = str(getattr(runtime, "backend", "compiled"))
        self.precision = str(getattr(runtime, "precision", "fp32"))
        self.reason = str(getattr(runtime, "reason", ""))
        self.cache_path = getattr(runtime, "cache_path", None)
        describe = getattr(runtime, "describe", None)
        self._text = describe() if callable(describe) else f"{self.backend} {self.precision} ({self.reason})"

    def describe(self) -> str:
        return self._text

    def __call__(self, x: torch.Tensor) -> torch.Tensor:   # never: an untrusted guard runs PyTorch
        raise RuntimeError(f"{self.backend} was released after failing the accuracy guard")


def cpu_runtime(model: nn.Module, card: ModelCard, *, backend: str, precision: str, batch_size: int = 1,
                calibration: str | PathLike | None = None, weights_file: str | None = None
                ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The CPU window network for ``backend``/``precision`` (None: plain PyTorch, nothing to attach).
    ``auto`` choices and int8 are wrapped in a :class:`GuardedRuntime`. ``calibration`` (int8): scans
    to calibrate on (default: the training split of the recipe stored with ``weights_file``)."""
    if backend == "torch" and precision in ("auto", "fp32"):
        return None
    from medseg.backends import get_predictor

    if backend == "auto" and precision == "auto":
        refused = remembered_refusal(model, card)
        if refused is not None:
            return refused
    scans = calibration_set(card, calibration, weights_file) if str(precision).lower() == "int8" else None
    runtime = get_predictor(model, backend=backend, precision=precision, roi_size=card.roi_size,
                            batch_size=batch_size, device="cpu", calibration=scans)
    if getattr(runtime, "backend", "torch") == "torch" and getattr(runtime, "precision", "fp32") == "fp32":
        return None
    if (backend == "auto" and precision == "auto") or getattr(runtime, "precision", "") == "int8":
        return GuardedRuntime(runtime, model, head_for(card))
    return runtime


def remembered_refusal(model: nn.Module, card: ModelCard) -> GuardedRuntime | None:
    """An already-refused :class:`GuardedRuntime` (PyTorch fp32 runs every window; nothing compiled is
    loaded) when ``auto``'s compiled runtime failed the guard on an earlier run; else None."""
    from medseg.backends import verdict
    from medseg.backends.predictor import compiled_entry
    from medseg.backends.selection import resolve

    entry = compiled_entry(model, roi_size=card.roi_size, in_channels=card.in_channels)
    found = verdict.read(entry)
    if entry is None or found is None or found.passed:
        return None
    plan = resolve("auto", "auto", torch.device("cpu"))
    logger.info("%s %s for %s: %s, PyTorch fp32 runs (delete %s to check again)", plan.backend, plan.precision,
                card.name, found.describe(), entry / verdict.VERDICT_FILE)
    placeholder = _Released(plan)
    placeholder.cache_path = entry
    return GuardedRuntime(placeholder, model, head_for(card), entry=entry)


def calibration_set(card: ModelCard, calibration: str | PathLike | None, weights_file: str | None):
    """INT8 calibration scans: ``calibration`` (a file or folder), else the model's own training cases."""
    from medseg.backends import calibration as cal
    from medseg.core.errors import MedsegError

    if calibration is not None:
        return cal.from_files(cal.image_files(calibration), card)
    files = cal.training_cases(weights_file)
    if not files:
        raise MedsegError(f"int8 needs calibration scans and the training data of {card.name} is not on this "
                          "machine", hint="pass --calibration FOLDER with a handful of the model's training scans")
    return cal.from_files(files, card, source=f"{min(len(files), cal.DEFAULT_CASES)} training cases of "
                          f"{card.name} from {files[0].parent}")
