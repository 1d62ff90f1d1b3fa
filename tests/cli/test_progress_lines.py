"""Progress when stderr is not a terminal (a log file, a pipe, CI): one line per case for `medseg predict` and
one per epoch for `medseg train`, each with elapsed time and an ETA; epochs counted from 1."""
from __future__ import annotations

import re

import numpy as np
from typer.testing import CliRunner

from medseg.cli import _progress
from medseg.cli import main as cli_main
from medseg.io import write_image
from tests.inference._models import WEIGHTS_FILE, noise_volume, register_threshold, weights_bytes
from tests.training.conftest import make_msd_dataset

runner = CliRunner()
TIME = r"\d+:\d\d:\d\d"


def test_eta_is_the_mean_time_per_finished_item_times_the_items_left(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    eta = _progress.Eta(total=5)
    now[0] += 20.0
    assert eta.step(1) == "elapsed 0:00:20, ETA 0:01:20"
    now[0] += 40.0  # slower second item: the rate is the mean over both
    assert eta.step(2) == "elapsed 0:01:00, ETA 0:01:30"
    assert _progress.clock(3725) == "1:02:05"


def test_predict_logs_one_line_per_case_with_elapsed_and_eta(tmp_path, rng):
    name = register_threshold()
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / WEIGHTS_FILE).write_bytes(weights_bytes())
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_image(noise_volume((10, 12, 8), rng)[None], tmp_path / "in" / f"c{i}.mha", affine=np.eye(4))
    args = ["predict", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", name,
            "--weights-dir", str(tmp_path / "weights"), "--device", "cpu", "--threads", "1"]
    first = runner.invoke(cli_main.app, args)
    assert first.exit_code == 0, first.output
    lines = re.findall(rf"^case (c\d) (\d)/3: done, elapsed {TIME}, ETA ({TIME})$", first.output, re.M)
    assert [(c, i) for c, i, _ in lines] == [("c0", "1"), ("c1", "2"), ("c2", "3")]
    assert lines[-1][2] == "0:00:00"
    (tmp_path / "out" / "c1.mha").unlink()  # --resume: two skipped (no time), one predicted
    second = runner.invoke(cli_main.app, [*args, "--resume"])
    assert second.exit_code == 0, second.output
    assert re.search(r"^case c0 \d/3: skipped$", second.output, re.M)
    assert re.search(rf"^case c1 3/3: done, elapsed {TIME}, ETA 0:00:00$", second.output, re.M)


def test_train_logs_one_line_per_epoch_counted_from_one(tmp_path):
    data = make_msd_dataset(tmp_path / "data", n=3, shape=(16, 16, 16))
    sets = [f"data.dataset='{data}'", "data.val_fraction=0.34", "model.name='stunet_t'",
            "model.overrides={width = 4}", "plan.roi_size=[16, 16, 16]", "train.epochs=2",
            "train.iterations_per_epoch=1", "train.batch_size=1", "train.num_workers=0", "train.val_every=1",
            "train.threads=1", f"train.output='{tmp_path / 'run'}'"]
    recipe = tmp_path / "recipe.toml"
    recipe.write_text("")
    result = runner.invoke(cli_main.app, ["train", str(recipe), "--device", "cpu",
                                          *[x for s in sets for x in ("--set", s)]])
    assert result.exit_code == 0, result.output
    lines = re.findall(rf"^epoch (\d)/2: loss [\d.]+, val Dice [\d.]+, elapsed {TIME}, ETA ({TIME})$",
                       result.output, re.M)
    assert [e for e, _ in lines] == ["1", "2"] and lines[-1][1] == "0:00:00"
    assert re.search(r"at epoch [12]/2;", result.output)
