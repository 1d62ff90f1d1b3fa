"""Training curves from the history CSV that ``medseg train`` / ``finetune`` write (one row per epoch).

Columns are grouped by what they measure: losses (``*loss*``, ``*mse*``), validation Dice (``val_dice*``,
0-1 axis) and any other validation metric (e.g. ``val_error_px`` of graph models). Several runs (a
``{name: history}`` mapping) share the panels, one colour per run, so fine-tuning and scratch compare
at a glance.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medseg.core.errors import MedsegError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

History = str | PathLike | Sequence[Mapping[str, Any]]


def read_history(history: History) -> list[dict[str, float]]:
    """Rows of a history CSV (or a list of dicts) with numbers as floats and empty cells as NaN."""
    source = None
    if isinstance(history, (str, PathLike)):
        source = Path(history)
        if not source.is_file():
            raise MedsegError("training history not found", path=source,
                              hint="medseg train writes history.csv in the run's output folder")
        with open(source, newline="", encoding="utf-8") as handle:
            history = list(csv.DictReader(handle))
    rows = []
    for row in history:
        out = {}
        for key, value in row.items():
            try:
                out[key] = float(value) if value not in (None, "") else math.nan
            except (TypeError, ValueError):
                continue
        rows.append(out)
    if not rows or "epoch" not in rows[0]:
        raise MedsegError("a training history needs rows with an 'epoch' column", path=source,
                          hint="give the history.csv written by medseg train")
    return rows


def _group(column: str) -> str | None:
    if column in ("epoch", "lr", "seconds"):
        return None
    if column.startswith("val_dice"):
        return "dice"
    if column.startswith("val_"):
        return "validation"
    if "loss" in column or "mse" in column:
        return "loss"
    return None


def _label(column: str) -> str:
    if column == "val_dice":
        return "mean Dice"
    return column.removeprefix("val_dice_").removeprefix("val_").replace("_", " ")


def training_curves(history: History | Mapping[str, History], *, columns: Sequence[str] | None = None,
                    title: str | None = None, size: float = 3.6) -> Figure:
    """Loss, validation Dice and other validation metrics against epoch, one panel per group.

    Args:
        history: a history CSV path or its rows, or ``{run name: history}`` for several runs.
        columns: plot only these columns (default: every loss and ``val_*`` column).

    Returns:
        The Figure; each line's label is the column (prefixed by the run name for several runs).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = history if isinstance(history, Mapping) else {"": history}
    tables = {name: read_history(h) for name, h in runs.items()}
    groups: dict[str, list[str]] = {"loss": [], "dice": [], "validation": []}
    for rows in tables.values():
        for column in rows[0]:
            group = _group(column)
            if group and (columns is None or column in columns) and column not in groups[group]:
                if any(not math.isnan(r.get(column, math.nan)) for r in rows):
                    groups[group].append(column)
    panels = [g for g in ("loss", "dice", "validation") if groups[g]]
    if not panels:
        raise MedsegError("the history has no loss or validation columns to plot",
                          hint=f"columns: {', '.join(next(iter(tables.values()))[0])}")
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 0.6, size), squeeze=False)
    styles = ["-", "--", ":", "-."]
    colour_cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, group in zip(axes[0], panels):
        for r, (run, rows) in enumerate(tables.items()):
            for c, column in enumerate(groups[group]):
                points = [(row["epoch"], row[column]) for row in rows if not math.isnan(row.get(column, math.nan))]
                if not points:
                    continue
                sparse = len(points) < len(rows)
                colour = colour_cycle[(r if len(tables) > 1 else c) % len(colour_cycle)]
                ax.plot(*zip(*points), color=colour, ls=styles[c % len(styles)] if len(tables) > 1 else "-",
                        marker="o" if sparse else None, ms=3,
                        label=f"{run}: {_label(column)}" if run else _label(column))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel({"loss": "training loss", "dice": "validation Dice", "validation": "validation"}[group])
        if group == "dice":
            ax.set_ylim(0, 1)
        values = [y for line in ax.lines for y in line.get_ydata()]
        if group == "loss" and values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")      # a loss falling by orders of magnitude stays readable
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
