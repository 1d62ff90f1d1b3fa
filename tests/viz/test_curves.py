"""training_curves: a panel per group of history columns, one line per column (and per run)."""
from __future__ import annotations

import csv

import pytest

from medseg.core.errors import MedsegError
from medseg.viz import training_curves


def _write(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _history(n=6, offset=0.0):
    rows = []
    for e in range(n):
        validated = e % 2 == 1
        rows.append({"epoch": e, "lr": 0.01, "train_loss": 1.0 / (e + 1) + offset, "seconds": e * 3.0,
                     "val_dice_Anterior": 0.5 + 0.05 * e if validated else "",
                     "val_dice_Posterior": 0.4 + 0.05 * e if validated else "",
                     "val_dice": 0.45 + 0.05 * e if validated else ""})
    return rows


def test_plots_the_csv_columns(tmp_path):
    path = _write(tmp_path / "history.csv", _history())
    fig = training_curves(path)
    loss, dice = fig.axes
    assert [line.get_label() for line in loss.lines] == ["train loss"]
    assert [line.get_label() for line in dice.lines] == ["Anterior", "Posterior", "mean Dice"]
    assert list(loss.lines[0].get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert list(dice.lines[2].get_xdata()) == [1, 3, 5]          # only validated epochs
    assert list(dice.lines[2].get_ydata()) == pytest.approx([0.5, 0.6, 0.7])
    assert dice.get_ylim() == (0, 1)


def test_shipped_model_history():
    from tests.conftest import ROOT

    fig = training_curves(ROOT / "pretrained" / "stunet_t_hippocampus_history.csv")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines[0].get_xdata()) > 50


def test_graph_history_gets_a_third_panel():
    rows = [{"epoch": e, "train_loss": 10 - e, "train_mse_px2": 9 - e, "val_error_px": 5 - e / 2, "val_dice": 0.5}
            for e in range(4)]
    fig = training_curves(rows)
    assert [a.get_ylabel() for a in fig.axes] == ["training loss", "validation Dice", "validation"]
    assert [line.get_label() for line in fig.axes[2].lines] == ["error px"]


def test_runs_share_panels(tmp_path):
    runs = {"fine-tune": _history(), "scratch": _history(offset=0.5)}
    fig = training_curves(runs, columns=["train_loss", "val_dice"])
    assert [line.get_label() for line in fig.axes[0].lines] == ["fine-tune: train loss", "scratch: train loss"]
    assert [line.get_label() for line in fig.axes[1].lines] == ["fine-tune: mean Dice", "scratch: mean Dice"]


def test_bad_history(tmp_path):
    with pytest.raises(MedsegError, match="not found"):
        training_curves(tmp_path / "missing.csv")
    with pytest.raises(MedsegError, match="epoch"):
        training_curves(_write(tmp_path / "h.csv", [{"step": 1, "loss": 2}]))


def test_loss_spanning_orders_of_magnitude_gets_a_log_axis():
    rows = [{"epoch": e, "train_loss": 10.0 ** (4 - e)} for e in range(5)]
    assert training_curves(rows).axes[0].get_yscale() == "log"
    rows = [{"epoch": e, "train_loss": 1.0 - 0.1 * e} for e in range(5)]
    assert training_curves(rows).axes[0].get_yscale() == "linear"
