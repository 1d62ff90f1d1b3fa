"""``bench_nnunet.py --repeat``: a row is the median round, and each ratio pairs an arm's round with nnU-Net's
run of the same round (what the README's time ratios are)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nnunet.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_nnunet", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seconds: float, rc: int = 0, peak: float = 100.0) -> dict:
    return {"seconds": seconds, "rc": rc, "peak_rss_mb": peak, "largest_process_rss_mb": peak, "last_line": ""}


def test_rounds_give_the_median_time_and_per_round_ratios(bench, capsys):
    peer = [_run(30.0), _run(40.0), _run(20.0)]
    mine = [_run(15.0, peak=90), _run(16.0, peak=95), _run(12.0, peak=80)]
    row = bench.combine(mine, peer)
    assert row["seconds"] == 15.0 and row["rounds_s"] == [15.0, 16.0, 12.0]
    assert row["round_ratios"] == [0.5, 0.4, 0.6]   # against the same round's nnU-Net run, not the medians' ratio
    bench.report({"i": {"nnunet": bench.combine(peer, peer), "medseg_default": row}})
    table = capsys.readouterr().out
    assert "| i | medseg_default | 15.0 |" in table and "0.50x (0.40-0.60)" in table


def test_a_failed_round_is_reported_not_hidden_in_a_median(bench):
    row = bench.combine([_run(15.0), _run(99.0, rc=1)], [_run(30.0), _run(30.0)])
    assert row["rc"] == 1


def test_one_round_is_the_run_itself(bench):
    run = _run(15.0)
    assert bench.combine([run], [_run(30.0)]) is run


def test_memory_comes_from_the_polled_round_and_time_from_the_unpolled_ones(bench):
    def timed(seconds):
        return {"seconds": seconds, "rc": 0, "last_line": "", "polled": False}

    polled_peer, polled_mine = {**_run(35.0, peak=3000), "polled": True}, {**_run(18.0, peak=2400), "polled": True}
    peer = [polled_peer, timed(30.0), timed(32.0), timed(34.0)]
    mine = [polled_mine, timed(14.0), timed(16.0), timed(15.0)]
    row = bench.combine(mine, peer)
    assert row["peak_rss_mb"] == 2400 and row["seconds"] == 15.0   # 18 s (slowed by the polling) left out
    assert row["rounds_s"] == [14.0, 16.0, 15.0]
    assert row["round_ratios"] == [round(14 / 30, 3), 0.5, round(15 / 34, 3)]
