"""DeepLabv3+: ASPP keeps its input size; the backbone reaches the requested output stride."""
from __future__ import annotations

import pytest
import torch

from medseg.models import create_model
from medseg.models._backbones2d import DilatedResNet, MobileNetV2
from medseg.models.deeplab import ASPP


@pytest.mark.parametrize("stride", [8, 16])
@pytest.mark.parametrize("kind", ["mobilenetv2", "resnet"])
def test_backbone_output_stride(kind, stride):
    net = MobileNetV2(1, 0.25, stride) if kind == "mobilenetv2" else DilatedResNet(1, (1, 1, 1, 1), 8, stride)
    low, high = net(torch.randn(1, 1, 64, 96))
    assert tuple(low.shape[2:]) == (16, 24)                       # decoder features at 1/4
    assert tuple(high.shape[2:]) == (64 // stride, 96 // stride)  # dilation replaces the later strides
    assert high.shape[1] == net.high_channels and low.shape[1] == net.low_channels


def test_aspp_keeps_size_and_sees_far():
    aspp = ASPP(8, 4, rates=(2, 4, 6)).eval()
    x = torch.randn(1, 8, 12, 12, requires_grad=True)
    out = aspp(x)
    assert tuple(out.shape) == (1, 4, 12, 12)
    out[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, -1, -1].abs().sum() > 0  # the image-pooling branch reaches the opposite corner


@pytest.mark.parametrize("stride", [8, 16])
def test_deeplab_logits_at_input_size(stride):
    model = create_model("deeplabv3plus_mobilenetv2", width=0.25, aspp_channels=8, low_channels=4,
                         output_stride=stride).eval()
    assert model.output_stride == stride
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 1, 48, 80)).shape) == (1, 2, 48, 80)
