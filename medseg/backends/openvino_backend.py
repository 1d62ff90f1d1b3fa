"""OpenVINO runtime: ONNX -> OpenVINO model with a static window and dynamic batch -> compiled CPU blob.

The cache entry holds ``model.blob``, the network compiled for this CPU, window and precision hint
(weights stay fp32 in the conversion; an INT8 entry holds the NNCF-quantised network, see
:mod:`medseg.backends.int8`), so a later run only imports the blob.
``INFERENCE_PRECISION_HINT`` is ``f32`` for fp32 and int8 (OpenVINO's CPU default on bf16 hardware is
bf16, so it is always set explicitly; int8 layers run in int8 whatever the hint) and ``bf16`` for bf16.

Two ways to run a call of several windows (``mode``, see :data:`MODES`): *latency* gives the whole batch
to one infer request on every thread; *throughput* imports the same blob a second time with
``NUM_STREAMS`` streams and runs one window per infer request through an ``AsyncInferQueue``, so the
streams work on different windows at once. A call of one window always takes the latency path.
Measured on the 2-core VM (``benchmarks/bench_backends.py --modes``, 2 threads, batches of 4 windows):
throughput ran 1.18x the windows/s of latency for the shipped STU-Net-T window (40x56x40) and 1.34x for
STU-Net-B at 32^3, but 0.94x for STU-Net-B at 64^3, where one window already keeps both cores busy. So
``auto`` picks throughput for windows up to :data:`THROUGHPUT_MAX_VOXELS` when 2+ threads are available,
and latency otherwise.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BLOB_FILE = "model.blob"
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
MODES = ("auto", "latency", "throughput")
MAX_STREAMS = 2  # more streams than cores only adds memory; 2 measured best on the 2-core VM
THROUGHPUT_MAX_VOXELS = 1 << 17  # 131072: above 40x56x40 (faster in throughput), below 64^3 (slower)


def runtime_config(precision: str, threads: int, streams: int = 1) -> dict[str, str]:
    """Compile/import properties: precision hint, ``streams`` streams (1: latency), ``threads`` in all."""
    return {
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        "NUM_STREAMS": str(int(streams)),
        "INFERENCE_NUM_THREADS": str(int(threads)),
    }


def resolve_mode(mode: str, threads: int, window_voxels: int) -> str:
    """``auto`` -> ``throughput`` with 2+ threads and windows of at most :data:`THROUGHPUT_MAX_VOXELS`
    (measured faster there for batches of windows), else ``latency``."""
    if mode == "auto":
        return "throughput" if threads >= 2 and window_voxels <= THROUGHPUT_MAX_VOXELS else "latency"
    return mode


def reshape_dynamic_batch(model, window: Sequence[int]) -> None:
    """Fix the window ``(C, *roi)`` and leave the batch axis dynamic (in place)."""
    import openvino as ov

    shape = ov.PartialShape([ov.Dimension(-1)] + [ov.Dimension(int(s)) for s in window])
    model.reshape({model.inputs[0].get_any_name(): shape})


def export_blob(model, entry: Path, *, precision: str, threads: int) -> None:
    """Compile ``model`` (an ``ov.Model``) for this CPU and write the blob into ``entry``."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", runtime_config(precision, threads))
    stream = io.BytesIO()
    compiled.export_model(stream)
    (entry / BLOB_FILE).write_bytes(stream.getvalue())


def build(entry: Path, onnx_path: Path, *, window: Sequence[int], precision: str, threads: int) -> None:
    """Convert the ONNX file for input ``(N, *window)`` (any N), compile it, and write the compiled blob.

    A dynamic batch costs nothing measurable here and avoids padding a short last batch.
    """
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    reshape_dynamic_batch(model, window)
    export_blob(model, entry, precision=precision, threads=threads)


class OpenVINORunner:
    """Runs a compiled model on float32 arrays ``(N, *window)`` (see the module docstring for ``mode``)."""

    def __init__(self, entry: Path, *, precision: str, threads: int, mode: str = "latency") -> None:
        import openvino as ov

        self.core = ov.Core()
        self.blob = (entry / BLOB_FILE).read_bytes()
        self.precision, self.threads = precision, int(threads)
        self.compiled = self.core.import_model(self.blob, "CPU", runtime_config(precision, self.threads))
        spatial = self.compiled.input(0).get_partial_shape()[2:]
        voxels = int(np.prod([d.get_length() for d in spatial])) if spatial.is_static else 1 << 62
        self.mode = resolve_mode(mode, self.threads, voxels)
        # a large window keeps every core busy alone: one window per call is faster than a batch of them
        # (nnU-Net's 128^3 CT network, 2 windows on 2 threads: 9.1 s one by one, 10.0 s as one batch)
        self.one_by_one = voxels > THROUGHPUT_MAX_VOXELS
        self.streams = min(MAX_STREAMS, self.threads) if self.mode == "throughput" else 1
        self.request = self.compiled.create_infer_request()
        self._queue = None
        self._results: dict[int, np.ndarray] = {}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.streams > 1 and batch.shape[0] > 1:
            return self._throughput(batch)
        if self.one_by_one and batch.shape[0] > 1:
            return self._one_by_one(batch)
        self.request.infer({0: batch})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def _one_by_one(self, batch: np.ndarray) -> np.ndarray:
        """Each window in its own call, its logits copied once, straight into the batch's output array."""
        out = None
        for i in range(batch.shape[0]):
            self.request.infer({0: np.ascontiguousarray(batch[i:i + 1])})
            logits = self.request.get_output_tensor(0).data
            if out is None:
                out = np.empty((batch.shape[0], *logits.shape[1:]), dtype=np.float32)
            out[i] = logits[0]
        return out

    def _throughput(self, batch: np.ndarray) -> np.ndarray:
        if self._queue is None:  # imported on the first batched call: single windows never pay for it
            import openvino as ov

            compiled = self.core.import_model(self.blob, "CPU",
                                              runtime_config(self.precision, self.threads, self.streams))
            self._queue = ov.AsyncInferQueue(compiled, self.streams)
            self._queue.set_callback(self._store)
        self._results.clear()
        for i in range(batch.shape[0]):
            self._queue.start_async({0: np.ascontiguousarray(batch[i:i + 1])}, i)
        self._queue.wait_all()
        return np.concatenate([self._results.pop(i) for i in range(batch.shape[0])], axis=0)

    def _store(self, request, index: int) -> None:
        self._results[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
