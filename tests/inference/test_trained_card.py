"""``--checkpoint`` uses the card saved by training (checkpoint dict or export JSON), not the registry's."""
import json

import pytest
import torch

from medseg.core.card import Intensity
from medseg.core.errors import MedsegError
from medseg.inference.model_loading import load_model
from medseg.inference.trained_card import trained_overrides
from medseg.models import create_model, get_card
from medseg.training.config import SaunaConfig
from medseg.training.sauna_target import sauna_card


def _trained(tmp_path):
    """A width-4 STU-Net-T with a SAUNA head and a planned spacing, as a training run would save it."""
    card = sauna_card(get_card("stunet_t").replace(spacing=(1.5, 1.0, 1.0), roi_size=(32, 32, 32),
                                                   intensity=Intensity("zscore", nonzero=True)),
                      SaunaConfig(threshold=0.6))
    fields = ("in_channels", "channel_names", "out_channels", "labels", "roi_size", "spacing", "intensity",
              "activation", "postprocess")
    model = create_model("stunet_t", width=4, **{k: getattr(card, k) for k in fields})
    recipe = {"model": {"name": "stunet_t", "overrides": {"width": 4}}}
    return model, card, recipe


def test_a_training_checkpoint_brings_its_card(tmp_path):
    model, card, recipe = _trained(tmp_path)
    path = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "card": card.to_dict(), "recipe": recipe, "epoch": 3}, path)
    net, loaded, info = load_model("stunet_t", checkpoint=path)
    assert loaded.activation == "regression" and loaded.out_channels == 2
    assert loaded.labels == card.labels and loaded.spacing == (1.5, 1.0, 1.0) and loaded.roi_size == (32, 32, 32)
    assert loaded.intensity == Intensity("zscore", nonzero=True)
    assert loaded.postprocess["sauna"]["threshold"] == 0.6
    assert info.weights_sha256 is not None
    for key, value in model.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)


def test_an_exported_safetensors_file_brings_the_card_of_its_json(tmp_path):
    from safetensors.torch import save_file

    model, card, recipe = _trained(tmp_path)
    path = tmp_path / "stunet_t.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    assert trained_overrides(path, "stunet_t") == {}        # no JSON: a plain weights file
    (tmp_path / "stunet_t.safetensors.json").write_text(json.dumps({"card": card.to_dict(), "recipe": recipe}))
    _, loaded, _ = load_model("stunet_t", checkpoint=path)
    assert loaded.activation == "regression" and loaded.spacing == (1.5, 1.0, 1.0)


def test_a_checkpoint_of_another_model_is_named(tmp_path):
    model, card, recipe = _trained(tmp_path)
    path = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "card": card.to_dict(), "recipe": recipe}, path)
    with pytest.raises(MedsegError, match="trained for model 'stunet_t', not 'stunet_s'"):
        load_model("stunet_s", checkpoint=path)
