"""Progress for ``medseg predict``: rich bars in a terminal, one line per case otherwise; the end-of-run table."""
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

from medseg.cli._progress import Eta

_STYLE = {"done": "green", "skipped": "cyan", "failed": "red"}


class PredictProgress:
    """Two bars on stderr (cases, and windows of the current case) in a terminal; otherwise, for several inputs, one line per case:
    ``case NAME i/n: STATUS, elapsed h:mm:ss, ETA h:mm:ss`` (skipped cases do not count towards the ETA)."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True,
                                 disable=not self.console.is_terminal)
        self.cases = None
        self.windows = None
        self.eta = Eta(0)
        self.ended = 0
        self.skipped = 0

    def __enter__(self) -> PredictProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, event) -> None:
        if self.cases is None:
            self.cases = self.progress.add_task("cases", total=event.total)
            self.eta = Eta(event.total)  # the clock starts with the batch
            self.windows = self.progress.add_task("windows", total=1, visible=False)
        if event.kind == "case_start":
            self.progress.update(self.windows, description=f"  {event.case}", completed=0, total=1, visible=True)
        elif event.kind == "windows":
            self.progress.update(self.windows, completed=event.done, total=event.of)
        elif event.kind == "case_end":
            self.progress.advance(self.cases)
            self.ended += 1
            # one input: its output (or its one error line) says it all, a progress line would add nothing
            if not self.console.is_terminal and event.total > 1:
                self._line(event)

    def _line(self, event) -> None:
        line = f"case {event.case} {self.ended}/{event.total}: {event.status}"
        if event.status == "skipped":  # already complete (--resume): takes no time, so not part of the rate
            self.skipped += 1
            self.eta.total -= 1
        else:
            line += f", {self.eta.step(self.ended - self.skipped)}"
        self.console.print(line, highlight=False, soft_wrap=True)


def print_summary(summary, predictor) -> None:
    """One row per case, then a one-line total; failures are listed with their reason."""
    console = Console(stderr=True)
    table = Table(title=f"medseg predict ({predictor.info.full_name}, {predictor.settings()['device']})")
    flags = any(getattr(r, "flagged", None) for r in summary.results)   # quality estimates (medseg.quality)
    for column in ("case", "status", "seconds", "output / reason") + (("flagged",) if flags else ()):
        table.add_column(column)
    for result in summary.results:
        style = _STYLE.get(result.status, "")
        where = result.message or str(result.case.output)
        row = [result.case.name, f"[{style}]{result.status}[/]", f"{result.seconds:.1f}", where]
        if flags:
            row.append(f"[yellow]{', '.join(result.flagged)}[/]" if result.flagged else "")
        table.add_row(*row)
    console.print(table)
    flagged = sum(bool(getattr(r, "flagged", None)) for r in summary.results)
    console.print(f"{summary.count('done')} done, {summary.count('skipped')} skipped, "
                  f"{summary.count('failed')} failed" + (f"; {flagged} with structures flagged by the quality "
                                                         "estimate (see the sidecars)" if flagged else ""))
