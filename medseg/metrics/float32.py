"""PyTorch's float32 reductions (sum, mean, linear quantile) in numpy, rounding step for rounding step.

MONAI stores surface distances as float32 torch tensors and reduces them with ``Tensor.mean`` and
``torch.quantile``. To give MONAI's numbers to the last bit without importing torch (``medseg evaluate``
starts in well under a second), this module repeats torch's CPU algorithms in float32:

- **sum** (``aten/src/ATen/native/cpu/SumKernel.cpp``, ``cascade_sum``): the contiguous array is read as
  vectors of 8 floats (:data:`LANES`), four vectors at a time
  (instruction-level parallelism), summed in a cascade of four levels whose chunk is ``2**max(4,
  ceil(log2(n)) // 4)`` rows; the scalar tail and then the lanes are added one by one. With several threads
  and more than 32768 values torch first splits the array into one chunk per thread: ``threads`` repeats
  that split (medseg's evaluation workers run torch with one thread, so 1 is the default).
- **mean**: that float32 sum divided by ``float32(n)``.
- **quantile** (linear): ``rank = float32(q) * float32(n - 1)`` and torch's ``lerp`` between the two order
  statistics around it (a fused multiply-add).

``tests/metrics/test_float32.py`` checks every function against torch on arrays of many sizes.
"""
from __future__ import annotations

import numpy as np

_GRAIN_SIZE = 32768  # at::internal::GRAIN_SIZE: below it a reduction never runs in parallel
_LEVELS = 4
_ILP = 4
_F32 = np.float32
# float32 lanes of torch's sum kernel: its x86 CPU kernels use 256-bit vectors (the AVX2 build also
# serves AVX-512 CPUs: SumKernel registers no AVX-512 variant), measured on an AVX-512 machine
LANES = 8


def _ceil_log2(n: int) -> int:
    return 0 if n <= 1 else int(n - 1).bit_length()


def _multi_row_sum(rows: np.ndarray) -> np.ndarray:
    """torch's ``multi_row_sum``: ``rows`` is ``(size, nrows, lanes)``; returns ``(nrows, lanes)``."""
    size = rows.shape[0]
    power = max(4, _ceil_log2(size) // _LEVELS)
    step, mask = 1 << power, (1 << power) - 1
    acc = np.zeros((_LEVELS,) + rows.shape[1:], dtype=_F32)
    full = size // step
    if full:  # each chunk of `step` rows is a plain running sum starting from 0
        chunks = np.add.accumulate(rows[: full * step].reshape((full, step) + rows.shape[1:]), axis=1)[:, -1]
    i = 0
    for c in range(full):
        acc[0] = chunks[c]
        i += step
        for j in range(1, _LEVELS):
            acc[j] += acc[j - 1]
            acc[j - 1] = 0
            if i & (mask << (j * power)):
                break
    for row in rows[i:]:
        acc[0] += row
    for j in range(1, _LEVELS):
        acc[0] += acc[j]
    return acc[0]


def _row_sum(items: np.ndarray) -> np.ndarray:
    """torch's ``row_sum``: ``items`` is ``(size, lanes)`` (lanes 1: the scalar kernel)."""
    size_ilp = items.shape[0] // _ILP
    partial = _multi_row_sum(items[: size_ilp * _ILP].reshape(size_ilp, _ILP, items.shape[1]))
    for row in items[size_ilp * _ILP:]:
        partial[0] += row
    for k in range(1, _ILP):
        partial[0] += partial[k]
    return partial[0]


def _chunk_sum(x: np.ndarray, lanes: int) -> np.float32:
    """The sum one thread computes over a contiguous float32 chunk (``vectorized_inner_sum``)."""
    n = len(x)
    if n < lanes:  # too short for a vector: the scalar kernel
        return _F32(_row_sum(x.reshape(n, 1))[0])
    vec_size = n // lanes
    vec_acc = _row_sum(x[: vec_size * lanes].reshape(vec_size, lanes))
    total = _F32(0)
    for value in x[vec_size * lanes:]:
        total = _F32(total + value)
    for value in vec_acc:
        total = _F32(total + value)
    return total


def sum32(values: np.ndarray, threads: int = 1, lanes: int | None = None) -> np.float32:
    """``torch.from_numpy(values.astype(float32)).sum()`` with torch using ``threads`` threads."""
    x = np.ascontiguousarray(values, dtype=_F32).ravel()
    lanes = lanes or LANES
    n = len(x)
    if n < _GRAIN_SIZE or threads <= 1:
        return _F32(_F32(0) + _chunk_sum(x, lanes))
    used = min(threads, -(-n // _GRAIN_SIZE))
    chunk = -(-n // used)
    partials = [_chunk_sum(x[start:start + chunk], lanes) for start in range(0, n, chunk)]
    partials += [_F32(0)] * (threads - len(partials))  # one buffer slot per thread, identity-filled
    return _F32(_F32(0) + _chunk_sum(np.asarray(partials, dtype=_F32), lanes))


def mean32(values: np.ndarray, threads: int = 1, lanes: int | None = None) -> float:
    """``Tensor.mean()`` of float32 values: the float32 sum divided by ``float32(n)``."""
    n = int(np.size(values))
    return float(_F32(sum32(values, threads, lanes) / _F32(n)))


def quantile32(values: np.ndarray, q: float) -> float:
    """``torch.quantile(float32 values, q)`` with linear interpolation."""
    x = np.asarray(values, dtype=_F32).ravel()
    if np.isnan(x).any():
        return float("nan")
    rank = _F32(q) * _F32(len(x) - 1)
    low = int(rank)
    high = int(np.ceil(rank))
    part = np.partition(x, [low, high]) if high != low else np.partition(x, low)
    start, end = part[low], part[high]
    weight = _F32(rank - _F32(low))
    return float(lerp32(start, end, weight))


def lerp32(start: np.float32, end: np.float32, weight: np.float32) -> np.float32:
    """torch's CPU ``lerp`` in float32, one fused multiply-add: ``start + w (end - start)`` for
    ``|w| < 0.5``, else ``end + (w - 1)(end - start)``, rounded once (the product of two float32 values is
    exact in float64, and so is the sum here)."""
    start, end, weight = _F32(start), _F32(end), _F32(weight)
    diff = np.float64(_F32(end - start))
    if abs(weight) < _F32(0.5):
        return _F32(np.float64(start) + np.float64(weight) * diff)
    return _F32(np.float64(end) + np.float64(_F32(weight - _F32(1))) * diff)
