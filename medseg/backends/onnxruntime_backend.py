"""ONNX Runtime (CPU execution provider): full graph optimisation, saved once per CPU.

The cache entry holds ``model.opt.onnx``, the graph after ORT_ENABLE_ALL
optimisation (layout and fusion passes are CPU-specific, so the cache key includes the CPU). Loading
the optimised file still uses the same options, as ONNX Runtime's offline-optimisation notes require.
ONNX Runtime on CPU runs fp32 only here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OPTIMIZED_FILE = "model.opt.onnx"


def _options(threads: int, save_to: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    return options


def build(entry: Path, onnx_path: Path, *, threads: int) -> None:
    """Optimise the ONNX graph for this CPU and save the result next to it."""
    import onnxruntime as ort

    ort.InferenceSession(str(onnx_path), _options(threads, entry / OPTIMIZED_FILE),
                         providers=["CPUExecutionProvider"])


class ONNXRuntimeRunner:
    """Runs the optimised graph on float32 arrays ``(N, *window)``."""

    def __init__(self, entry: Path, *, threads: int) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(entry / OPTIMIZED_FILE), _options(threads),
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)
