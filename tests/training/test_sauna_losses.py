"""SAUNA losses (signed JML, focal-L1, their sum) and the ``train.target = "sauna"`` mode end to end."""
import numpy as np
import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.training.sauna_losses import (
    SaunaLoss,
    SoftDeepSupervisionLoss,
    focal_l1_loss,
    signed_jaccard_loss,
)
from medseg.transforms.sauna import sauna_soft_label


def soft_target(spatial=(24, 24)) -> torch.Tensor:
    """A real SAUNA map of a thick and a thin bar: (1, 1, *spatial) in [-1, 1]."""
    label = np.zeros((1, *spatial), np.uint8)
    label[0, 4:12, ...] = 1
    label[0, 16:18, ...] = 1
    return torch.from_numpy(sauna_soft_label(label))[None]


@pytest.mark.parametrize("spatial", [(24, 24), (12, 12, 12)])
def test_jml_is_zero_exactly_at_the_target_and_positive_elsewhere(spatial):
    y = soft_target(spatial)
    assert float(signed_jaccard_loss(y, y)) == pytest.approx(0.0, abs=1e-7)
    gen = torch.Generator().manual_seed(0)
    for scale in (1e-3, 0.1, 1.0):
        other = (y + scale * torch.randn(y.shape, generator=gen)).clamp(-1, 1)
        assert float(signed_jaccard_loss(other, y)) > 0
    assert float(signed_jaccard_loss(-y, y)) == pytest.approx(1.0)   # opposite signs share nothing
    # larger errors cost more
    assert signed_jaccard_loss(0.5 * y, y) < signed_jaccard_loss(0.1 * y, y)


def test_jml_gradient_is_finite_with_soft_targets_even_at_the_optimum():
    y = soft_target((16, 16, 8))
    for start in (y.clone(), torch.zeros_like(y), torch.ones_like(y), -torch.ones_like(y)):
        pred = start.clone().requires_grad_(True)
        signed_jaccard_loss(pred, y).backward()
        assert torch.isfinite(pred.grad).all()
    # through tanh, from a fresh network's small logits (at exactly 0 the relu split has zero gradient)
    logits = (0.01 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    signed_jaccard_loss(torch.tanh(logits), y).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_focal_l1_weights_correct_signs_by_the_error_and_is_finite_at_extremes():
    y = torch.tensor([0.5, 0.5, -0.5])
    p = torch.tensor([0.2, -0.2, -0.9])
    # correct sign: 2 * |e| * |e|; wrong sign: |e|
    expected = (2 * 0.3 * 0.3 + 0.7 + 2 * 0.4 * 0.4) / 3
    assert float(focal_l1_loss(p, y)) == pytest.approx(expected)
    assert float(focal_l1_loss(y, y)) == 0.0
    for extreme in (0.0, 1.0, -1.0):
        for target in (torch.zeros(4), torch.ones(4), -torch.ones(4), soft_target().flatten()[:4]):
            pred = torch.full_like(target, extreme, requires_grad=True)
            loss = focal_l1_loss(pred, target)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    pred = torch.zeros(4, requires_grad=True)                           # beta < 1 at e = 0
    focal_l1_loss(pred, torch.tensor([0.0, 0.3, -0.3, 0.0]), beta=0.5).backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize("spatial", [(16, 16), (8, 8, 8)])
def test_combined_loss_on_saturated_logits_and_deep_supervision(spatial):
    y = soft_target(spatial)
    loss_fn = SaunaLoss()
    for value in (-1e4, 0.0, 1e4):
        logits = torch.full_like(y, value, requires_grad=True)
        loss = loss_fn(logits, y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # perfect prediction: only the (tiny) tanh error of atanh(y) remains
    assert float(loss_fn(torch.atanh(y.clamp(-0.999, 0.999)), y.clamp(-0.999, 0.999))) < 1e-5
    half = tuple(s // 2 for s in spatial)
    outputs = (torch.zeros_like(y, requires_grad=True), torch.zeros(1, 1, *half, requires_grad=True))
    total = SoftDeepSupervisionLoss(loss_fn)(outputs, y)
    total.backward()
    assert torch.isfinite(total) and outputs[1].grad is not None
    with pytest.raises(ValueError, match="differ"):
        loss_fn(torch.zeros(1, 2, *spatial), y)


def test_a_few_sauna_training_steps_reduce_the_loss(tiny_recipe):
    from medseg.training import fit
    from medseg.training.prepare import prepare_data

    tiny_recipe.train.epochs = 6
    tiny_recipe.train.target = "sauna"
    data = prepare_data(tiny_recipe)
    assert data.card.activation == "regression" and data.card.out_channels == 2
    assert data.card.postprocess["sauna"]["threshold"] == 0.5
    result = fit(tiny_recipe, data=data)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert "val_dice_a" in result.history[-1] and 0.0 <= result.history[-1]["val_dice"] <= 1.0
    soft = data.train[0]["sauna"]                                       # stored as y + 1 in [0, 2]
    assert soft.shape[0] == 2 and float(soft.min()) >= 0 and float(soft.max()) <= 2
    saved = torch.load(result.output / "last.pt", weights_only=True)
    assert saved["card"]["postprocess"]["sauna"]["activation"] == "tanh"


def test_sauna_patches_carry_the_soft_map_through_augmentation(tiny_recipe):
    from medseg.training.prepare import prepare_data
    from medseg.training.sampling import PatchDataset, build_augmentation
    from medseg.training.sauna_target import target_for

    tiny_recipe.train.target = "sauna"
    data = prepare_data(tiny_recipe)
    target = target_for(tiny_recipe, data.card)
    target.prepare(data.train)
    augment = build_augmentation((16, 16, 16), float_keys=(target.key,))
    dataset = PatchDataset(data.train, (16, 16, 16), 8, 1.0, augment, extra_keys=(target.key,))
    for i in range(8):
        sample = dataset[i]
        y = target.batch_target({target.key: sample[target.key]})
        assert y.shape == (2, 16, 16, 16) and y.dtype == torch.float32
        assert float(y.min()) >= -1 and float(y.max()) <= 1
        # the soft map still agrees with the (nearest-neighbour) hard label almost everywhere
        agree = ((y[0] > 0) == (sample["label"][0] == 1)).float().mean()
        assert agree > 0.9


def test_unknown_target_and_mismatched_card_are_clear_errors(tiny_recipe):
    from medseg.training.prepare import prepare_data
    from medseg.training.sauna_target import target_for

    data = prepare_data(tiny_recipe)                                    # hard-label card
    tiny_recipe.train.target = "sauna"
    with pytest.raises(MedsegError, match="prepared for hard labels"):
        target_for(tiny_recipe, data.card)
    tiny_recipe.train.target = "soft"
    with pytest.raises(MedsegError, match="unknown train.target"):
        target_for(tiny_recipe, data.card)
