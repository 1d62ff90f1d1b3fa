import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.models import create_model
from medseg.training import fit
from medseg.training.finetune import prepare_finetune, transfer_weights


def test_every_matching_tensor_is_loaded_and_only_the_heads_reinitialised():
    source = create_model("stunet_t", width=4).state_dict()
    target = create_model("stunet_t", width=4, out_channels=5)
    report = transfer_weights(target, source)
    heads = {k for k in source if k.startswith("seg_outputs.")}
    assert set(report.reinitialised) == heads
    assert set(report.loaded) == set(source) - heads
    for key in report.loaded:
        assert torch.equal(target.state_dict()[key], source[key])


def test_input_channels_are_tiled():
    source = create_model("stunet_t", width=4).state_dict()
    target = create_model("stunet_t", width=4, in_channels=3)
    report = transfer_weights(target, source)
    stem = "conv_blocks_context.0.0.conv1.weight"
    assert stem in report.adapted
    for c in range(3):
        assert torch.equal(target.state_dict()[stem][:, c], source[stem][:, 0])


def test_checkpoint_of_another_architecture_is_refused():
    with pytest.raises(MedsegError, match="does not fit"):
        transfer_weights(create_model("stunet_t", width=8), create_model("stunet_t", width=4).state_dict())
    with pytest.raises(MedsegError, match="no tensor"):
        transfer_weights(create_model("stunet_t", width=4), {"foo.weight": torch.zeros(3)})


def test_finetune_from_a_training_checkpoint(tiny_recipe, tmp_path):
    first = fit(tiny_recipe, max_epochs=1)
    tiny_recipe.finetune.source = str(first.output / "last.pt")
    tiny_recipe.data.label_map = {"2": 1}        # new label set: merge both blobs into one class
    tiny_recipe.data.labels = {"0": "background", "1": "blob"}
    tiny_recipe.train.output = str(tmp_path / "ft")
    data, model, report = prepare_finetune(tiny_recipe)
    assert model.card.labels == ("background", "blob")
    assert all(k.startswith("seg_outputs.") for k in report.reinitialised)
    result = fit(tiny_recipe, data=data, model=model, max_epochs=1)
    assert result.history[0]["lr"] == pytest.approx(tiny_recipe.train.lr * 0.1)
