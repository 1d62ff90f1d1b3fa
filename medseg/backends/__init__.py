"""Fast inference runtimes for the predict engine: PyTorch, OpenVINO and ONNX Runtime, fp32/bf16/fp16, and
OpenVINO INT8 (NNCF post-training quantisation, ``pip install 'medseg[int8]'``) behind the accuracy guard.

``get_predictor(model, roi_size=..., batch_size=...)`` returns a callable with the model's contract
that MONAI's ``sliding_window_inference`` can use as its ``predictor``. OpenVINO and ONNX Runtime are
optional (``pip install 'medseg[cpu]'``) and imported only when used. OpenVINO runs batches of windows in
latency or throughput mode (``mode=``); INT8 needs ``calibration=`` (:mod:`medseg.backends.calibration`).
"""
from medseg.backends.availability import available_backends, cpu_supports_bf16
from medseg.backends.guard import GUARD_DICE, LabelAgreement, compare_label_maps
from medseg.backends.predictor import Predictor, get_predictor
from medseg.backends.selection import BACKEND_CHOICES, PRECISION_CHOICES

__all__ = [
    "BACKEND_CHOICES", "GUARD_DICE", "PRECISION_CHOICES", "LabelAgreement", "Predictor",
    "available_backends", "compare_label_maps", "cpu_supports_bf16", "get_predictor",
]
