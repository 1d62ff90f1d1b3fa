"""Writing reports and training curves must not switch matplotlib's backend: in Jupyter that would stop
every later figure (medseg.viz included) from showing."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

CODE = """
import matplotlib, numpy as np
matplotlib.use("svg")                      # stands in for Jupyter's inline backend
import matplotlib.pyplot as plt
from medseg.reports.figures import metric_plot, overlay
from medseg.training.history import plot_history
rows = [{"label": 1, "dice": 0.8, "case": "a"}, {"label": 1, "dice": 0.9, "case": "b"}]
assert metric_plot(rows, {1: "liver"}, "dice", "Dice").startswith(b"\\x89PNG")
ref = np.zeros((8, 8, 4), np.uint8); ref[2:6, 2:6, 1:3] = 1
overlay(ref, ref, np.eye(4), 1, "liver")
plot_history([{"epoch": 0, "train_loss": 1.0, "val_dice": 0.5}], "{out}")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert not plt.get_fignums()
"""


def test_report_and_history_figures_leave_the_backend_alone(tmp_path):
    code = CODE.replace("{out}", str(tmp_path / "curves.png"))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    assert (tmp_path / "curves.png").stat().st_size > 1000
