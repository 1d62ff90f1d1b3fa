import pytest
import torch

from medseg.core.errors import MedsegError
from medseg.models import create_model
from medseg.training import fit
from medseg.training.finetune import finetune_recipe, prepare_finetune, transfer_weights


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


def test_recipe_and_set_values_win_over_the_command_defaults(tmp_path):
    recipe = tmp_path / "ft.toml"
    recipe.write_text('[train]\noutput = "runs/mine"\nepochs = 7\n[finetune]\nfreeze_encoder_epochs = 2\n')
    resolved = finetune_recipe(recipe, source="stunet_t.hippocampus", data=tmp_path,
                               overrides=["train.lr=0.005", "finetune.freeze_encoder_epochs=3"])
    assert resolved.train.output == "runs/mine" and resolved.train.epochs == 7     # the recipe's, not defaults
    assert resolved.finetune.freeze_encoder_epochs == 3 and resolved.train.lr == 0.005   # --set wins
    flags = finetune_recipe(recipe, source="stunet_t.hippocampus", data=tmp_path, epochs=2,
                            overrides=["train.epochs=4"])
    assert flags.train.epochs == 4                                                  # --set over --epochs
    plain = finetune_recipe(None, source="stunet_t.hippocampus", data=tmp_path)
    assert plain.train.output.endswith("finetune_stunet_t") and plain.finetune.freeze_encoder_epochs == 0
    assert plain.model.name == "stunet_t" and plain.finetune.source == "stunet_t.hippocampus"


def test_the_finetune_command_reads_the_dataset_once(tiny_recipe, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medseg.cli import main as cli_main
    from medseg.training import prepare

    tiny_recipe.train.epochs = 1
    first = fit(tiny_recipe, max_epochs=1)
    reads = []
    original = prepare.load_dataset
    monkeypatch.setattr(prepare, "load_dataset", lambda source: reads.append(source) or original(source))
    result = CliRunner().invoke(cli_main.app, [
        "finetune", "--from", str(first.output / "last.pt"), "--model", "stunet_t", "--data", tiny_recipe.data.dataset,
        "--set", "model.overrides={width = 4}", "--set", "plan.roi_size=[16, 16, 16]", "--set", "train.epochs=1",
        "--set", "train.iterations_per_epoch=1", "--set", "train.num_workers=0", "--set", "train.threads=1",
        "--freeze-encoder-epochs", "1", "--output", str(tmp_path / "ft"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(reads) == 1 and (tmp_path / "ft" / "last.pt").is_file()
