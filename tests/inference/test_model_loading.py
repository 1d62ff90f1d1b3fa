import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.inference import model_loading
from medseg.inference.model_loading import default_model_name, load_model
from tests.inference._models import (
    WEIGHTS_FILE,
    register_threshold,
    threshold_model,
    weights_bytes,
)


@pytest.fixture
def no_shipped_weights(tmp_path, monkeypatch):
    """Hide the weights shipped in the package (medseg/data/pretrained: stunet_t.hippocampus)."""
    from medseg.models import weights

    monkeypatch.setattr(weights, "PACKAGE_PRETRAINED", tmp_path / "no_pretrained")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_default_is_the_first_model_with_local_weights(tmp_path, monkeypatch, no_shipped_weights):
    monkeypatch.delenv("MEDSEG_WEIGHTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    name = register_threshold()
    weights = tmp_path / "w"
    weights.mkdir()
    with pytest.raises(MedsegError, match="no pretrained weights were found"):
        default_model_name(weights)
    (weights / WEIGHTS_FILE).write_bytes(weights_bytes())
    assert default_model_name(weights) == name
    net, card, info = load_model(None, weights_dir=weights)
    assert card.name == "medseg_test_threshold" and info.tag == "fixed" and len(info.weights_sha256) == 64
    monkeypatch.setattr(model_loading, "DEFAULT_MODEL", name)  # the preferred default is tried first
    assert default_model_name(weights) == name


def test_modules_need_a_card_and_untagged_names_need_weights(tmp_path, monkeypatch, no_shipped_weights):
    monkeypatch.chdir(tmp_path)
    model, card, info = load_model(threshold_model())
    assert info.full_name == "threshold" and info.weights_sha256 is None
    with pytest.raises(MedsegError, match="no .card"):
        load_model(torch.nn.Conv3d(1, 2, 1))
    with pytest.raises(MedsegError, match="weights for stunet_t.hippocampus not found"):
        load_model("stunet_t")
    with pytest.raises(MedsegError, match="checkpoint not found"):
        load_model("stunet_t", checkpoint=tmp_path / "nope.safetensors")
