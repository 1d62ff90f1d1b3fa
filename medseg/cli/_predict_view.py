"""Rich progress bars and the end-of-run table for ``medseg predict`` (terminal output only)."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

_STYLE = {"done": "green", "skipped": "cyan", "failed": "red"}


class PredictProgress:
    """Two bars on stderr: cases, and windows of the current case. Silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True,
                                 disable=not self.console.is_terminal)
        self.cases = None
        self.windows = None

    def __enter__(self) -> PredictProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, event) -> None:
        if self.cases is None:
            self.cases = self.progress.add_task("cases", total=event.total)
            self.windows = self.progress.add_task("windows", total=1, visible=False)
        if event.kind == "case_start":
            self.progress.update(self.windows, description=f"  {event.case}", completed=0, total=1, visible=True)
        elif event.kind == "windows":
            self.progress.update(self.windows, completed=event.done, total=event.of)
        elif event.kind == "case_end":
            self.progress.advance(self.cases)


def print_summary(summary, predictor) -> None:
    """One row per case, then a one-line total; failures are listed with their reason."""
    console = Console(stderr=True)
    table = Table(title=f"medseg predict ({predictor.info.full_name}, {predictor.settings()['device']})")
    for column in ("case", "status", "seconds", "output / reason"):
        table.add_column(column)
    for result in summary.results:
        style = _STYLE.get(result.status, "")
        where = result.message or str(result.case.output)
        table.add_row(result.case.name, f"[{style}]{result.status}[/]", f"{result.seconds:.1f}", where)
    console.print(table)
    console.print(f"{summary.count('done')} done, {summary.count('skipped')} skipped, "
                  f"{summary.count('failed')} failed")
