"""Files in, files out with a built predictor: plan the cases, check a single scan's header first, then the
batch path. Its own module (no MONAI, no model zoo) so the TotalSegmentator path uses it without importing
:mod:`medseg.api`; :func:`medseg.api.predict_files` builds a predictor and calls it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

from medseg.inference.batch import BatchEvent, BatchSummary, OutputOptions, run_batch
from medseg.inference.cases import parse_shard, plan_cases, resolve_output_format, select_shard, shard_from_env
from medseg.inference.preflight import preflight_header


def plan(inputs: Sequence[str | PathLike], output: str | PathLike | None, *, output_type: str = "multilabel",
         output_format: str | None = None, shard: str | tuple[int, int] | None = None) -> tuple[list, str]:
    """The cases this process takes (``shard``: ``"i/n"``, ``(i, n)``; default torchrun's RANK/WORLD_SIZE) and the
    resolved output format; a single DICOM series with a DICOM output is checked now, before inference."""
    output_format = resolve_output_format(output_format, output)
    cases = plan_cases(inputs, output, output_type, output_format)
    if output_format != "image" and len(cases) == 1:  # one series: refuse a bad source before inference
        from medseg.io.dicom_source import load_source_series

        load_source_series(cases[0].input)
    split = parse_shard(shard) if isinstance(shard, str) else shard or shard_from_env()
    if split is not None:
        cases = select_shard(cases, *split)
    return cases, output_format


def run_files(predictor: Any, cases: Sequence, *, output_format: str, output_type: str = "multilabel",
              stats: bool = False, resume: bool = False, frame: int | None = None, series: str | None = None,
              progress: Callable[[BatchEvent], None] | None = None) -> BatchSummary:
    """Segment the planned ``cases`` with ``predictor``, writing every output (see :func:`run_batch`)."""
    if len(cases) == 1:  # one scan: refuse it from its header now (exit 2), before any voxel is processed
        preflight_header(cases[0].input, predictor)
    options = OutputOptions(output_type=output_type, stats=stats, frame=frame, output_format=output_format,
                            series=series)
    return run_batch(predictor, cases, options, resume=resume, progress=progress)


def predict_files_with(predictor: Any, inputs: Sequence[str | PathLike], output: str | PathLike | None = None, *,
                       output_type: str = "multilabel", output_format: str | None = None, stats: bool = False,
                       resume: bool = False, shard: str | tuple[int, int] | None = None, frame: int | None = None,
                       series: str | None = None,
                       progress: Callable[[BatchEvent], None] | None = None) -> BatchSummary:
    """:func:`medseg.api.predict_files` with an already-built predictor."""
    cases, output_format = plan(inputs, output, output_type=output_type, output_format=output_format, shard=shard)
    return run_files(predictor, cases, output_format=output_format, output_type=output_type, stats=stats,
                     resume=resume, frame=frame, series=series, progress=progress)
