"""Training stores each structure's volume / component / intensity distribution in the card, and a run's
checkpoint card brings it back for prediction (what the quality estimate compares with)."""
from __future__ import annotations

import torch

from medseg.core.card import ModelCard
from medseg.training.prepare import with_quality_reference


def _case(size: int) -> dict:
    label = torch.zeros((1, 16, 16, 16), dtype=torch.int64)
    label[0, 2:2 + size, 2:2 + size, 2:2 + size] = 1
    label[0, 10:14, 10:14, 10:14] = 2
    return {"image": torch.randn((1, 16, 16, 16)), "label": label}


def test_the_card_gets_the_training_distribution_per_structure():
    card = ModelCard(name="t", spatial_dims=3, in_channels=1, out_channels=3, labels=("bg", "a", "b"),
                     spacing=(2.0, 2.0, 2.0))
    out = with_quality_reference(card, [_case(4), _case(5), _case(6)])
    ref = out.quality["reference"]
    assert set(ref) == {"a", "b"} and ref["a"]["cases"] == 3
    assert ref["a"]["volume_ml"]["p01"] > 0.5 and ref["a"]["volume_ml"]["p99"] < 1.8   # 64..216 voxels x 8 mm3
    assert out.to_dict()["quality"]["reference"]["b"]["components"]["median"] == 1


def test_a_checkpoint_card_brings_its_quality_reference_back(tmp_path):
    from medseg.inference.trained_card import trained_overrides

    state = {"card": {"name": "stunet_t", "labels": ["bg", "a"], "out_channels": 2,
                      "quality": {"reference": {"a": {"cases": 1}}}}}
    path = tmp_path / "best.pt"
    torch.save(state, path)
    assert trained_overrides(path, "stunet_t")["quality"] == {"reference": {"a": {"cases": 1}}}
