"""Multi-scale guided attention network: published structure, auxiliary losses exposed, 3D variant."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg.models import create_model, get_entry, unpack_train_output
from medseg.models._msga_blocks import ChannelAttention, PositionAttention
from medseg.models._registry import build_on_meta


def test_2d_model_has_the_published_backbone_and_heads():
    model = build_on_meta("msga_2d")
    backbone = sum(p.numel() for p in model.backbone.parameters())
    heads = sum(p.numel() for p in model.parameters()) - backbone
    assert backbone == 86_736_064  # ResNeXt-101 32x8d, 1-channel stem, no classifier
    # the released model has 17,775,411 head parameters, 955,412 of them in modules its forward never uses
    assert heads == 17_775_411 - 955_412
    assert model.card.spatial_dims == 2


def test_training_output_exposes_every_guidance_term():
    torch.manual_seed(0)
    model = create_model("msga_3d", **get_entry("msga_3d").test_overrides).train()
    x = torch.randn(1, 1, 64, 64, 64)
    raw = model(x)
    assert isinstance(raw, dict)
    out = unpack_train_output(raw)
    assert len(out.predictions) == 8 and len(raw["latents"]) == 8 and len(raw["reconstructions"]) == 8
    semantic = sum(F.mse_loss(raw["latents"][s], raw["latents"][4 + s]) for s in range(4))
    recon = sum(F.mse_loss(d, x_in) for d, x_in in zip(raw["reconstructions"], raw["guide_inputs"]))
    assert torch.allclose(out.aux_loss, 0.25 * semantic + 0.1 * recon)
    assert torch.allclose(out.logits, torch.stack(out.predictions[4:]).mean(0))  # mean of the refined maps
    loss = sum(F.cross_entropy(p, torch.zeros(1, 64, 64, 64, dtype=torch.long)) for p in out.predictions)
    (loss + out.aux_loss).backward()
    assert model.semantic[0].enc1[0].weight.grad.abs().sum() > 0  # the guidance losses reach the guide
    assert model.pam[1][3].attn[3].gamma.grad is not None
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), out.logits, atol=1e-5)  # instance norm: eval == train


def test_attention_modules_start_as_identity_and_pool_large_grids():
    x = torch.randn(2, 16, 12, 12, 12)
    pam = PositionAttention(3, 16, max_tokens=216)
    assert torch.equal(pam(x), x)  # gamma starts at 0
    with torch.no_grad():
        pam.gamma.fill_(1.0)
    y = pam(x)
    assert y.shape == x.shape and not torch.equal(y, x)
    cam = ChannelAttention()
    assert torch.equal(cam(x), x)


def test_channel_attention_matches_its_definition():
    torch.manual_seed(1)
    x = torch.randn(1, 3, 4, 4)
    cam = ChannelAttention()
    with torch.no_grad():
        cam.gamma.fill_(0.5)
    flat = x.flatten(2)[0]
    energy = flat @ flat.T
    attention = torch.softmax(energy.max(dim=-1, keepdim=True).values - energy, dim=-1)
    expected = 0.5 * (attention @ flat).view(1, 3, 4, 4) + x
    assert torch.allclose(cam(x), expected, atol=1e-6)
