"""OpenVINO runtime: ONNX -> OpenVINO model with a static window and dynamic batch -> compiled CPU blob.

The cache entry holds ``model.blob``, the network compiled for this CPU, window and precision hint
(weights stay fp32 in the conversion), so a later run only imports the blob.
``INFERENCE_PRECISION_HINT`` is ``f32`` for fp32 (OpenVINO's CPU default on bf16 hardware is bf16, so
it is always set explicitly) and ``bf16`` for bf16.
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BLOB_FILE = "model.blob"
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def runtime_config(precision: str, threads: int) -> dict[str, str]:
    """Compile/import properties: precision hint, one latency stream, ``threads`` inference threads."""
    return {
        "INFERENCE_PRECISION_HINT": _HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(int(threads)),
    }


def build(entry: Path, onnx_path: Path, *, window: Sequence[int], precision: str, threads: int) -> None:
    """Convert the ONNX file for input ``(N, *window)`` (any N), compile it, and write the compiled blob.

    A dynamic batch costs nothing measurable here and avoids padding a short last batch.
    """
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    shape = ov.PartialShape([ov.Dimension(-1)] + [ov.Dimension(int(s)) for s in window])
    model.reshape({model.inputs[0].get_any_name(): shape})
    compiled = ov.Core().compile_model(model, "CPU", runtime_config(precision, threads))
    stream = io.BytesIO()
    compiled.export_model(stream)
    (entry / BLOB_FILE).write_bytes(stream.getvalue())


class OpenVINORunner:
    """Runs a compiled model on float32 arrays ``(N, *window)``."""

    def __init__(self, entry: Path, *, precision: str, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        config = runtime_config(precision, threads)
        self.compiled = core.import_model((entry / BLOB_FILE).read_bytes(), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch})
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)
