"""`medseg train` then `medseg predict` with zoo models whose outputs are not softmax classes: BASNet (one
sigmoid channel, 7 side outputs), MSGA (dict outputs with an auxiliary loss) on 2D recipes, and Swin UNETR
on a BraTS-style toy set (4 channels, overlapping regions painted as labels 2 > 1 > 4)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import main as cli_main
from medseg.io import read_image
from medseg.models import create_model, get_entry
from tests.models._toy_data import write_toy_dataset

runner = CliRunner()
CASES = {
    "basnet": ({"base": 4, "layers": [1, 1, 1, 1, 1, 1], "refine_channels": 4}, [128, 128], {0, 1}),
    "msga_2d": ({"layers": [1, 1, 1, 1], "groups": 2, "width_per_group": 16, "base_planes": 8, "channels": 8,
                 "pam_max_tokens": 512}, [64, 64], {0, 1}),
    "swin_unetr_brats": ({"feature_size": 12, "window_size": 4}, [32, 32, 64], {0, 1, 2, 4}),
}


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, dict) else \
        "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_train_then_predict_gives_outputs_of_the_right_kind(name, tmp_path):
    arch, roi, values = CASES[name]
    card = create_model(name, **dict(get_entry(name).test_overrides)).card
    root = write_toy_dataset(tmp_path / "data", card, n=4, size=24)
    run = tmp_path / "run"
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f"""[data]
dataset = "{root}"
val_fraction = 0.25
[model]
name = "{name}"
overrides = {_toml(arch)}
[plan]
roi_size = {roi}
{"spacing = [1.0, 1.0, 1.0]" if card.spatial_dims == 3 else ""}
[train]
epochs = 2
iterations_per_epoch = 2
batch_size = 2
num_workers = 0
val_every = 1
threads = 1
augmentation = "none"
output = "{run}"
""")
    trained = runner.invoke(cli_main.app, ["train", str(recipe), "--device", "cpu"])
    assert trained.exit_code == 0, trained.output
    history = (run / "history.csv").read_text()
    scored = ("tumor_core", "whole_tumor", "enhancing_tumor") if values == {0, 1, 2, 4} else ("blob",)
    assert all(f"val_dice_{s}" in history for s in scored)

    scan = root / "imagesTr" / ("c0.nii.gz" if card.spatial_dims == 3 else "c0.png")
    out = tmp_path / ("seg.nii.gz" if card.spatial_dims == 3 else "seg.png")
    predicted = runner.invoke(cli_main.app, ["predict", str(scan), "-o", str(out), "--model", name, "--checkpoint",
                                             str(run / "best.pt"), "--device", "cpu", "--fast", "--threads", "1"])
    assert predicted.exit_code == 0, predicted.output
    labels = read_image(out).as_tensor()[0].numpy()
    assert labels.shape == read_image(scan, allow_multichannel=True).shape[1:]
    assert set(np.unique(labels).tolist()) <= values
