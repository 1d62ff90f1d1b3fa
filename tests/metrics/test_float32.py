"""numpy's copies of torch's float32 reductions give torch's numbers bit for bit (medseg.metrics.float32).

MONAI reduces surface distances with ``Tensor.mean`` and ``torch.quantile`` in float32; medseg repeats them
without torch. Arrays of many sizes cover every branch of torch's cascade sum: the scalar kernel (< 8
values), vector tails, several cascade levels, and the per-thread split above 32768 values.
"""
import numpy as np
import pytest
import torch

from medseg.metrics.float32 import mean32, quantile32, sum32
from medseg.metrics.reductions import monai_reduce
from medseg.metrics.surface import SurfaceDistances, edge_distances

SIZES = [*range(1, 70), 127, 128, 129, 255, 1000, 4096, 4097, 32767, 32768, 32769, 70001, 250007]


def _arrays(seed: int):
    rng = np.random.default_rng(seed)
    for n in SIZES:
        yield (rng.random(n) * 10).astype(np.float32)            # continuous values
        yield np.sqrt(rng.integers(0, 400, n)).astype(np.float32)  # voxel distances: many ties


@pytest.mark.parametrize("threads", [1, 2])
def test_sum_and_mean_match_torch(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for x in _arrays(threads):
            t = torch.from_numpy(x)
            assert float(sum32(x, threads)) == float(t.sum()), len(x)
            assert mean32(x, threads) == float(t.mean()), len(x)
    finally:
        torch.set_num_threads(before)


def test_single_thread_order_differs_from_two_threads_only_above_the_grain():
    # the split is real: on this many values one and two threads round differently for some arrays
    rng = np.random.default_rng(3)
    arrays = [(rng.random(70001) * 10).astype(np.float32) for _ in range(20)]
    assert any(sum32(x, 1) != sum32(x, 2) for x in arrays)
    small = [(rng.random(30000) * 10).astype(np.float32) for _ in range(5)]
    assert all(sum32(x, 1) == sum32(x, 2) for x in small)


@pytest.mark.parametrize("q", [0.95, 0.5, 0.05])
def test_quantile_matches_torch(q):
    for x in _arrays(7):
        assert quantile32(x, q) == float(torch.quantile(torch.from_numpy(x), q)), len(x)


def _reduce_with_torch(d: SurfaceDistances, tolerance: float) -> dict[str, float]:
    """The torch reductions medseg used before (and MONAI uses): the reference for the numpy copy."""
    a = torch.from_numpy(d.pred_to_ref.astype(np.float32))
    b = torch.from_numpy(d.ref_to_pred.astype(np.float32))
    tol = np.float32(tolerance)
    correct = int((a <= tol).sum()) + int((b <= tol).sum())
    return {"hd": float(torch.maximum(a.max(), b.max())),
            "hd95": max(float(torch.quantile(a, 0.95)), float(torch.quantile(b, 0.95))),
            "assd": float(torch.cat((a, b)).mean()), "msd_pred_to_ref": float(a.mean()),
            "msd_ref_to_pred": float(b.mean()), "nsd": correct / (len(a) + len(b))}


def test_monai_reduce_equals_the_torch_reductions(one_torch_thread):
    rng = np.random.default_rng(11)
    shape = (60, 70, 50)
    grid = np.indices(shape).astype(np.float64)
    centre = np.array(shape)[:, None, None, None] / 2
    radius = np.sqrt(((grid - centre) ** 2).sum(0))
    checked = 0
    for r_ref, r_pred, noise in [(12, 13, 0.0), (20, 19, 1.5), (24, 24.5, 3.0), (8, 15, 0.5)]:
        ref = radius < r_ref
        pred = radius + rng.normal(0, noise, shape) < r_pred  # ragged surfaces: many distinct distances
        d = edge_distances(pred, ref, (1.0, 0.8, 2.5))
        checked = max(checked, len(d.pred_to_ref) + len(d.ref_to_pred))
        assert monai_reduce(d, 1.5) == _reduce_with_torch(d, 1.5)
    assert checked > 32768  # the pooled assd mean crossed torch's parallel grain size
