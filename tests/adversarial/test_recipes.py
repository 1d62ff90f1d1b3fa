"""What users type into recipes (issue 16, items 9 and 13): every field validated by one schema, bad values
are one line naming the key (exit 2), nothing is written; a run without validation cases says so and still
leaves a usable best.pt."""
from __future__ import annotations

import pytest

from medseg import api
from medseg.io import read_image
from tests.adversarial._io_probe import assert_refused, invoke, snapshot
from tests.training.conftest import make_msd_dataset

BAD = [
    ("data.val_cases=10", "data.val_cases must be a valid list"),
    ("train.lr=-1", "train.lr must be greater than 0"),
    ("train.batch_size=0", "train.batch_size must be greater than or equal to 1"),
    ("train.epochs=-1", "train.epochs must be greater than or equal to 1"),
    ("train.iterations_per_epoch=0", "train.iterations_per_epoch must be greater than or equal to 1"),
    ("train.lr=nan", "train.lr must be a finite number"),
    ("train.epochs=2.7", "train.epochs must be a valid integer"),
    ("data.val_fraction=1.5", "data.val_fraction must be less than 1"),
    ("train.optimizer='adam'", "train.optimizer must be 'sgd' or 'adamw'"),
    ("plan.roi_size=[64, 0, 64]", "plan.roi_size[1] must be greater than or equal to 1"),
    ("sauna.threshold=1", "sauna.threshold must be less than 1"),
    ("train.lrr=0.1", "did you mean 'lr'"),
]


@pytest.mark.parametrize("override, message", BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_one_line_exit_2(tmp_path, override, message):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[data]\ndataset = "{tmp_path / "data"}"\n[train]\noutput = "{tmp_path / "run"}"\n')
    before = snapshot(tmp_path)
    result = invoke("train", recipe, "--set", override)
    assert_refused(result, recipe, message)
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


def test_bad_value_in_the_recipe_file_names_the_key(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[train]\nepochs = "many"\n')
    assert_refused(invoke("train", recipe), recipe, "train.epochs must be a valid integer, got 'many'")


def test_a_run_without_validation_cases_says_so_and_keeps_a_usable_checkpoint(tmp_path):
    data = make_msd_dataset(tmp_path / "data", n=3, shape=(16, 16, 16))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f"""
[data]
dataset = "{data}"
val_fraction = 0.0
[model]
name = "stunet_t"
overrides = {{width = 4}}
[plan]
roi_size = [16, 16, 16]
[train]
epochs = 1
iterations_per_epoch = 2
batch_size = 1
num_workers = 0
threads = 1
augmentation = "none"
output = "{tmp_path / 'run'}"
""")
    result = invoke("train", recipe)
    assert result.exit_code == 0, result.output
    assert "no validation cases" in result.stderr and "best.pt holds the final epoch" in result.stderr
    best = tmp_path / "run" / "best.pt"
    assert best.is_file()
    scan = data / "imagesTr" / "case_000.nii.gz"
    labels = api.predict(scan, "stunet_t", checkpoint=best, device="cpu", tta=False)
    assert tuple(labels.shape) == tuple(read_image(scan).shape)
