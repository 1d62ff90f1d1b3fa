"""A fully convolutional network (nnU-Net's) is traced for ONNX on a small window with dynamic spatial axes,
then declared for the real window: the compiled runtimes must give the full-size trace's logits on that window
(the trace's forward pass was 8 of the 9.3 s of a real-size CT network's export)."""
from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch

from medseg.backends import export as onnx_export
from medseg.backends.predictor import get_predictor
from medseg.nnunet.network import build_network
from tests.nnunet._synthetic import arch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="medseg[cpu] not installed")


def _network(kind: str, dims: int = 3, strides=None):
    torch.manual_seed(0)
    a = copy.deepcopy(arch(kind, dims))
    if strides is not None:
        a["arch_kwargs"]["strides"] = strides
    net = build_network({"architecture": a}, in_channels=1, num_classes=3).eval()
    with torch.no_grad():   # InstanceNorm affine params away from 1/0, so a wrong graph shows in the logits
        for m in net.modules():
            if isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


CASES = {
    "plain": (_network("PlainConvUNet"), (32, 48, 40), (8, 8, 8)),
    "resenc": (_network("ResidualEncoderUNet"), (32, 32, 48), (8, 8, 8)),
    "anisotropic": (_network("PlainConvUNet", strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2]]), (12, 48, 40), (2, 8, 8)),
    "2d": (_network("PlainConvUNet", dims=2), (48, 64), (8, 8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_nnunet_networks_are_traced_at_twice_their_total_stride(name):
    net, roi, traced = CASES[name]
    assert onnx_export.trace_size(net, roi) == traced


def test_a_model_without_trace_window_is_traced_at_the_window():
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    assert onnx_export.trace_size(conv, (16, 24, 8)) == (16, 24, 8)


def test_the_file_declares_the_window_and_a_dynamic_batch(tmp_path):
    import onnx

    net, roi, _ = CASES["plain"]
    onnx_export.export_onnx(net, tmp_path / "m.onnx", roi_size=roi, in_channels=1)
    dims = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, *roi] and dims[0].dim_param == "batch"


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_logits_on_the_full_window_match_pytorch(name, backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} not installed")
    net, roi, traced = CASES[name]
    assert traced != roi   # the small trace is what is checked here
    predictor = get_predictor(net, backend=backend, precision="fp32", roi_size=roi, cache_dir=tmp_path,
                              device="cpu")
    windows = torch.randn(2, 1, *roi)
    with torch.no_grad():
        reference = net(windows)
    got = predictor(windows)
    assert got.shape == reference.shape
    np.testing.assert_allclose(got.numpy(), reference.numpy(), atol=2e-4, rtol=1e-4)


def test_weights_too_large_for_an_in_memory_model_are_traced_at_the_window(monkeypatch):
    net, roi, _ = CASES["plain"]
    monkeypatch.setattr(onnx_export, "IN_MEMORY_BYTES", 0)   # protobuf's 2 GB limit, scaled down
    assert onnx_export.trace_size(net, roi) == roi
