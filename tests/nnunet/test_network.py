"""Networks rebuilt from plans: both plans formats, PlainConvUNet and ResEnc, 2D and 3D, nnU-Net key names."""
from __future__ import annotations

import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.nnunet.network import architecture_from_plans, build_network
from tests.nnunet._synthetic import arch


def _old_format(kind: str) -> dict:
    return {"UNet_class_name": kind, "UNet_base_num_features": 4, "unet_max_num_features": 8,
            "n_conv_per_stage_encoder": [2, 2, 2], "n_conv_per_stage_decoder": [1, 1], "patch_size": [16, 16, 16],
            "num_pool_per_axis": [2, 2, 2], "pool_op_kernel_sizes": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "conv_kernel_sizes": [[3, 3, 3]] * 3}


@pytest.mark.parametrize("kind", ["PlainConvUNet", "ResidualEncoderUNet"])
def test_old_plans_format_rebuilds_the_same_network(kind):
    name, kwargs = architecture_from_plans(_old_format(kind))
    assert name == kind and kwargs["features_per_stage"] == [4, 8, 8]  # min(base * 2**i, max)
    new = {"architecture": arch(kind)}
    new["architecture"]["arch_kwargs"]["features_per_stage"] = [4, 8, 8]
    a, b = build_network(_old_format(kind), 2, 3), build_network(new, 2, 3)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_state_dict_uses_nnunet_names_and_runs_2d_and_3d():
    plain = build_network({"architecture": arch("PlainConvUNet")}, 1, 3).state_dict()
    assert "encoder.stages.0.0.convs.0.conv.weight" in plain
    assert "encoder.stages.0.0.convs.0.all_modules.0.weight" in plain  # registered twice, as in nnU-Net
    assert "decoder.encoder.stages.2.0.convs.1.norm.bias" in plain
    assert "decoder.seg_layers.1.weight" in plain and "decoder.transpconvs.0.weight" in plain
    res = build_network({"architecture": arch("ResidualEncoderUNet")}, 1, 3).state_dict()
    assert "encoder.stem.convs.0.conv.weight" in res
    assert "encoder.stages.1.blocks.0.skip.1.conv.weight" in res  # avg-pool then 1x1 conv (ResNet-D)
    net2d = build_network({"architecture": arch("PlainConvUNet", dims=2)}, 1, 3).eval()
    with torch.no_grad():
        assert net2d(torch.zeros(1, 1, 16, 24)).shape == (1, 3, 16, 24)


def test_layer_types_come_from_a_fixed_table_not_from_imports():
    bad = {"architecture": arch("PlainConvUNet")}
    bad["architecture"]["arch_kwargs"]["nonlin"] = "os.system"
    with pytest.raises(MedsegError, match="unsupported nonlin 'os.system'"):
        build_network(bad, 1, 3)
