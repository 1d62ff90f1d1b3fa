"""Many heads (an nnU-Net folder with 100+ classes): the engine's labels and sums are exactly the window-order
float16 accumulation, and its peak memory is a slab of cells plus one window, never a per-class array of
the whole volume."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.inference.sliding_window import EngineOptions, sliding_window_labels
from medseg.inference.stitcher import CellStitcher
from medseg.inference.windows import GAUSSIAN_FLOOR, WindowGrid, gaussian_weights
from medseg.models.heads import as_head

ROOT = Path(__file__).resolve().parents[2]
HEADS = 40


def _net(heads: int, seed: int = 0):
    """A fixed random 3x3x3 convolution, one window at a time (the same float32 logits whatever the batch):
    many classes with near-tied logits, so float16 rounding decides labels."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv3d(1, heads, 3, padding=1)
    return lambda x: torch.cat([conv(w[None]).detach() for w in x])


def _reference(image: torch.Tensor, net, heads: int, roi, overlap: float) -> torch.Tensor:
    """The arithmetic the engine must reproduce bit for bit: every window's Gaussian-weighted float32 logits
    rounded to float16 and added, in the engine's window order, into one whole-volume float16 array."""
    grid = WindowGrid.plan(image.shape[1:], roi, overlap)
    gauss = gaussian_weights(roi, floor=GAUSSIAN_FLOOR)
    sums = torch.zeros((heads, *grid.size), dtype=torch.float16)
    for start in grid.windows:
        region = tuple(slice(s, s + r) for s, r in zip(start, roi))
        window = image[(slice(None), *region)][None]
        sums[(slice(None), *region)] += (net(window)[0].float() * gauss).to(torch.float16)
    return sums


@pytest.mark.parametrize("shape,batch", [((34, 20, 27), 1), ((20, 37, 24), 3)])
def test_many_head_sums_and_labels_are_the_float16_window_order_sums(rng, monkeypatch, shape, batch):
    image = torch.from_numpy(rng.normal(0, 1, shape).astype(np.float32))[None]
    net = _net(HEADS)
    roi = (16, 16, 16)
    stitched = torch.full((HEADS, *shape), float("nan"), dtype=torch.float16)
    finalize = CellStitcher._finalize

    def keep_sums(self, cell):   # every cell's sums, as they are when the cell is decided
        stitched[(slice(None), *self.grid.cell_slices(cell))] = self._cells[cell]
        finalize(self, cell)

    monkeypatch.setattr(CellStitcher, "_finalize", keep_sums)
    result = sliding_window_labels(image, net, channels=HEADS, activation="softmax", options=EngineOptions(
        roi=roi, batch_size=batch, accumulate="float16"))
    sums = _reference(image, net, HEADS, roi, 0.5)
    labels = as_head("softmax", HEADS).decide(sums, None, 0.5)
    assert result.accumulate == "float16"
    assert len(torch.unique(labels)) > HEADS // 2    # a real many-class label map, not one class
    assert torch.equal(stitched, sums)                # bit-identical sums (no NaN left: every cell decided)
    assert torch.equal(result.labels, labels.to(result.labels.dtype))


# Run in a fresh process: its peak resident memory (ru_maxrss) before and after the engine is the memory a
# user sees, whatever allocates it (torch does not report to tracemalloc).
_PEAK = textwrap.dedent("""
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    from medseg.inference.sliding_window import EngineOptions, sliding_window_labels
    heads, shape, roi = %d, %s, %s
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(1, heads, 1)
    image = torch.randn(1, *shape)
    net = lambda x: conv(x).detach()
    net(image[:, :roi[0], :roi[1], :roi[2]][None])  # warm up: the first call's one-off allocations
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.inference_mode():
        result = sliding_window_labels(image, net, channels=heads, activation="softmax",
                                       options=EngineOptions(roi=roi, accumulate="float16"))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"grew": after - before, "live": result.peak_stitch_bytes}))
""")


def test_peak_memory_with_105_heads_is_a_slab_of_cells_not_the_volume():
    heads, shape, roi = 105, (256, 64, 48), (32, 32, 32)
    script = _PEAK % (heads, shape, roi)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    grid = WindowGrid.plan(shape, roi, 0.5)
    slab = heads * grid.live_voxels_bound() * 2            # the live cells' bound, float16
    window = heads * int(np.prod(roi)) * 4                 # one window's float32 logits
    volume = heads * int(np.prod(shape)) * 2               # a float16 per-class array of the whole volume
    assert measured["live"] <= slab
    # the labels (1 B a voxel) and allocator slack on top of the cells and two windows (logits, weighted)
    budget = slab + 2 * window + int(np.prod(shape)) + (24 << 20)
    assert measured["grew"] <= budget < volume / 2, (measured, budget, volume)
