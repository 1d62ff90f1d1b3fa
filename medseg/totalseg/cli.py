"""``medseg predict --model totalsegmentator[:TASK]``: locate and check the parts, then medseg's batch path."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg.core.errors import MedsegError


def parse_labels(text: str | None) -> list[str] | None:
    """``--labels liver,spleen`` -> ["liver", "spleen"] (None when not given)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise MedsegError("--labels is empty", hint="e.g. --labels liver,spleen")
    return list(dict.fromkeys(names))


def reject_options(used: dict[str, bool]) -> None:
    """Options of ``medseg predict`` this path does not honour: refused by name rather than ignored."""
    names = [name for name, on in used.items() if on]
    if names:
        raise MedsegError(f"{', '.join(names)} not supported with --model totalsegmentator",
                          hint="drop them (TotalSegmentator's settings: CPU, step 0.8, no mirroring, fold 0)")


def cli_command(model: str, inputs: Sequence[Path], output: Path | None, *, weights_dir: Path | None,
                output_type: str, output_format: str | None = None, stats: bool = False, resume: bool = False,
                shard: str | None = None, frame: int | None = None, series: str | None = None,
                labels: str | None = None, exact: bool = False, batch_size: int | None = None,
                threads: int | None = None, backend: str = "auto", precision: str = "auto") -> int:
    """The ``medseg predict`` entry: medseg's progress view and summary; returns the exit code (a single
    failing input raises its one-line error instead)."""
    from medseg.cli._predict_view import PredictProgress, print_summary
    from medseg.inference.files import predict_files_with
    from medseg.totalseg.standard import build_totalseg_predictor

    if output_type not in ("multilabel", "per-class"):
        raise MedsegError(f"unknown --output-type {output_type!r}", hint="use multilabel or per-class")
    predictor = build_totalseg_predictor(model, weights_dir=weights_dir, labels=parse_labels(labels), exact=exact,
                                         threads=threads, batch_size=batch_size, backend=backend,
                                         precision=precision)
    with PredictProgress() as view:
        summary = predict_files_with(predictor, inputs, output, output_type=output_type,
                                     output_format=output_format, stats=stats, resume=resume, shard=shard,
                                     frame=frame, series=series, progress=view.update)
    single = summary.single_failure()
    if single is not None:
        raise single
    print_summary(summary, predictor)
    return summary.exit_code
