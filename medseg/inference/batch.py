"""Batch prediction over many cases: one loaded model, the next scan read while the current one runs,
``--resume`` skipping finished cases, and a failed case reported without stopping the others."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from medseg.core.atomic import OutputError
from medseg.core.claims import Claim, lock_path, read_owner, try_claim
from medseg.core.errors import MedsegError
from medseg.core.log import get_logger
from medseg.inference.cases import Case, output_extension
from medseg.inference.output_checks import check_outputs, predictor_outputs
from medseg.inference.outputs import (
    case_files,
    remove_stale,
    write_multilabel,
    write_per_class,
    write_probabilities,
    write_soft,
)
from medseg.inference.prediction import Prediction
from medseg.inference.provenance import (
    build_sidecar,
    input_digest,
    is_complete,
    now_iso,
    run_record,
    write_sidecar,
)
from medseg.inference.stats import label_statistics, with_quality_columns, write_statistics
from medseg.io import read_image, read_volume
from medseg.quality.estimate import flagged_structures, with_label_quality
from medseg.quality.resume import refresh_flags

if TYPE_CHECKING:
    from medseg.inference.predictor import Predictor

logger = get_logger(__name__)


@dataclass(frozen=True)
class BatchEvent:
    """Progress report: ``kind`` is ``case_start``, ``windows`` or ``case_end``."""

    kind: str
    case: str
    index: int
    total: int
    done: int = 0          # windows done (kind == "windows")
    of: int = 0            # windows in this case
    status: str = ""       # case_end: done / skipped / failed


@dataclass
class CaseResult:
    """How one case went."""

    case: Case
    status: str            # "done", "skipped" or "failed"
    seconds: float = 0.0
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)   # structures the quality estimate flags (medseg.quality)


@dataclass
class BatchSummary:
    """All case results; ``exit_code`` is 1 when any case failed (the CLI turns a single failed input
    into one error line and exit code 2, see :meth:`single_failure`)."""

    results: list[CaseResult]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0

    def single_failure(self) -> MedsegError | None:
        """For a run of exactly one case that failed: its error as one line (else None)."""
        if len(self.results) != 1 or self.results[0].status != "failed":
            return None
        result = self.results[0]
        lines = [line for line in result.message.splitlines() if line.strip()]
        return MedsegError(lines[0] if lines else "failed", hint=None)


@dataclass(frozen=True)
class OutputOptions:
    """What to write for each case."""

    output_type: str = "multilabel"
    stats: bool = False
    frame: int | None = None
    output_format: str = "image"  # or dicom-seg / rtstruct (medseg.io.dicom_objects)
    series: str | None = None     # DICOM folders with several series: the SeriesInstanceUID to read

    def parameters(self, predictor: Predictor) -> dict[str, Any]:
        """The parameters that define a result (recorded, and compared by ``--resume``)."""
        extra = {} if self.output_format == "image" else {"output_format": self.output_format}
        return {**extra, "output_type": self.output_type, "stats": self.stats, "frame": self.frame,
                **({"series": self.series} if self.series else {}),
                "probabilities": predictor.options.probabilities, "overlap": predictor.overlap,
                "tta": predictor.tta, "fast": predictor.options.fast,
                "postprocess": predictor.postprocess.to_dict(), **predictor.output_parameters()}


def _load(case: Case, frame: int | None, channels: int, series: str | None = None, plain: bool = False):
    """The case's image (a MetaTensor; ``plain``: a :class:`~medseg.io.volume.Volume`, no MONAI) and its sha256."""
    read = read_volume if plain else read_image
    image = read(case.input, frame=frame, series=series, allow_multichannel=channels > 1)
    return image, input_digest(case.input)


def write_case(case: Case, prediction: Prediction, image, *, predictor: Predictor, options: OutputOptions,
               input_sha256: str, started: str, seconds: float) -> dict[str, Any]:
    """Write every output of one case, the provenance sidecar last; returns the sidecar's output list."""
    files = case_files(case, options.output_type)
    remove_stale(files)
    labels = np.asarray(prediction.labels[0])  # MetaTensor -> plain array (no copy of the metadata)
    affine = np.asarray(prediction.labels.affine, dtype=np.float64)
    names, model_name = prediction.label_names, predictor.info.full_name
    if options.output_format != "image":
        from medseg.io.dicom_objects import write_dicom_labels

        outputs = {"labels": write_dicom_labels(
            options.output_format, labels, affine, case.input, files.labels, names, model=model_name,
            weights_sha256=predictor.info.weights_sha256, series_uid=image.meta.get("dicom_series"))}
    elif options.output_type == "per-class":
        outputs = write_per_class(labels, affine, files.labels, names, output_extension(case.input), model_name)
    else:
        outputs = {"labels": write_multilabel(labels, affine, files.labels, names, model_name)}
    if options.stats:
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        rows = label_statistics(labels, np.asarray(image[0]), spacing, names)
        rows = with_quality_columns(rows, prediction.quality)
        write_statistics(rows, files.stats_csv, files.stats_json,
                         extra={"case": case.name, "spacing_mm": spacing.tolist(), "model": model_name})
        for key, path in (("stats_csv", files.stats_csv), ("stats_json", files.stats_json)):
            outputs[key] = {"path": path.name, "bytes": path.stat().st_size}
    if prediction.probabilities is not None:
        outputs["probabilities"] = write_probabilities(prediction.probabilities, affine, files.probabilities)
    if prediction.soft is not None and files.soft is not None:
        outputs["soft"] = write_soft(prediction.soft, affine, files.soft)
    record = build_sidecar(
        input_path=str(case.input), input_sha256=input_sha256, input_shape=labels.shape, input_affine=affine,
        model=predictor.info, card_dict=predictor.card.to_dict(), label_names=names,
        parameters=options.parameters(predictor), settings=prediction.settings, outputs=outputs,
        started=started, seconds=seconds, timings=prediction.timings, warnings=prediction.warnings,
        run=run_record(predictor, prediction.settings),
    )
    if prediction.quality is not None:
        record["quality"] = prediction.quality
    write_sidecar(files.sidecar, record)
    return outputs


def run_batch(predictor: Predictor, cases: Sequence[Case], options: OutputOptions, *, resume: bool = False,
              progress: Callable[[BatchEvent], None] | None = None, prefetch: bool = True) -> BatchSummary:
    """Segment every case; reading case i+1 overlaps inference of case i (one background thread)."""
    check_outputs(cases, options.output_type, stats=options.stats, **predictor_outputs(predictor))
    parameters = options.parameters(predictor)
    todo: list[Case] = []
    results: dict[Case, CaseResult] = {}
    for case in cases:
        if resume and is_complete(case_files(case, options.output_type).sidecar, model=predictor.info,
                                  parameters=parameters):
            flagged = refresh_flags(case_files(case, options.output_type), predictor.options.flag_below)
            results[case] = CaseResult(case, "skipped", message="already complete", flagged=flagged)
        else:
            todo.append(case)
    total = len(cases)
    notify = progress or (lambda event: None)
    for i, case in enumerate(cases):
        if case in results:
            notify(BatchEvent("case_end", case.name, i, total, status="skipped"))
    index_of = {case: i for i, case in enumerate(cases)}
    level = logging.ERROR if len(cases) > 1 else logging.DEBUG  # one case: the caller reports its failure
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medseg-read") as pool:
        def submit(case: Case) -> Future:
            return pool.submit(_load, case, options.frame, predictor.card.in_channels, options.series,
                               getattr(predictor, "plain_images", False))

        pending: Future | None = submit(todo[0]) if todo else None
        for k, case in enumerate(todo):
            current, pending = pending, (submit(todo[k + 1]) if prefetch and k + 1 < len(todo) else None)
            i = index_of[case]
            claim: Claim | None = None
            if resume:  # concurrent --resume runs split the cases: each output is claimed by one process
                claim, busy = _claim(case, options, predictor, parameters)
                if busy:
                    results[case] = CaseResult(case, "skipped", message=busy)
                    if pending is None and k + 1 < len(todo):
                        pending = submit(todo[k + 1])
                    notify(BatchEvent("case_end", case.name, i, total, status="skipped"))
                    continue
            notify(BatchEvent("case_start", case.name, i, total))
            start, started = time.perf_counter(), now_iso()
            try:
                assert current is not None  # one future per case in todo
                image, digest = current.result()
                def on_windows(done: int, of: int, c: Case = case, j: int = i) -> None:
                    notify(BatchEvent("windows", c.name, j, total, done, of))

                prediction = predictor.predict(image, path=str(case.input), progress=on_windows)
                prediction = with_label_quality(prediction, predictor)   # engines without a quality probe
                outputs = write_case(case, prediction, image, predictor=predictor, options=options,
                                     input_sha256=digest, started=started, seconds=time.perf_counter() - start)
                results[case] = CaseResult(case, "done", time.perf_counter() - start, outputs=outputs,
                                           flagged=flagged_structures(prediction.quality))
            except OutputError:  # a full disk or read-only folder fails every case: stop the run
                raise
            except MedsegError as exc:
                results[case] = CaseResult(case, "failed", time.perf_counter() - start, str(exc))
                logger.log(level, "%s", exc)
            except Exception as exc:
                results[case] = CaseResult(case, "failed", time.perf_counter() - start,
                                           f"{case.input}: {type(exc).__name__}: {exc}")
                logger.log(level, "%s: %s: %s", case.input, type(exc).__name__, exc)
                logger.debug("traceback of the failure above", exc_info=True)
            finally:
                if claim is not None:
                    claim.release()
                if pending is None and k + 1 < len(todo):  # prefetch off: read the next one now
                    pending = submit(todo[k + 1])
            notify(BatchEvent("case_end", case.name, i, total, status=results[case].status))
    return BatchSummary([results[c] for c in cases])


def _claim(case: Case, options: OutputOptions, predictor: Predictor,
           parameters: dict[str, Any]) -> tuple[Claim | None, str]:
    """Claim ``case`` for this process; ``(None, why)`` when another process holds or has finished it."""
    claim = try_claim(case.output)
    if claim is None:
        owner = read_owner(lock_path(case.output)) or {}
        return None, f"claimed by pid {owner.get('pid', '?')} on {owner.get('host', '?')}"
    if is_complete(case_files(case, options.output_type).sidecar, model=predictor.info, parameters=parameters):
        claim.release()  # finished by another process since this run started
        return None, "already complete"
    return claim, ""
