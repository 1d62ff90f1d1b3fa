"""The metrics log of a run: a CSV written atomically each epoch, and a PNG of the curves."""
from __future__ import annotations

import csv
import io
from os import PathLike
from pathlib import Path

from medseg.core.atomic import atomic_path, atomic_write_text


def write_history(rows: list[dict], path: str | PathLike) -> None:
    """Write the per-epoch rows (union of keys as columns) to CSV."""
    if not rows:
        return
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def plot_history(rows: list[dict], path: str | PathLike) -> None:
    """Loss (left) and validation Dice per label (right) against epoch, saved as PNG."""
    from matplotlib.figure import (
        Figure,  # not pyplot: leaves the backend (e.g. Jupyter's) alone
    )

    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_dice = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    dice_keys = sorted({k for r in rows for k in r if k.startswith("val_dice")})
    for key in dice_keys:
        points = [(r["epoch"], r[key]) for r in rows if r.get(key) not in (None, "")]
        if points:
            ax_dice.plot(*zip(*points), marker="o", ms=3, label=key.removeprefix("val_dice_") or "mean")
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice")
    ax_dice.set_ylim(0, 1)
    ax_dice.grid(alpha=0.3)
    if dice_keys:
        ax_dice.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as temp:
        fig.savefig(temp, dpi=110, format="png")
