import pytest

from medseg.core.errors import MedsegError
from medseg.training.config import load_recipe


def test_recipe_typo_suggests_the_right_key(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[train]\nepohcs = 3\n")
    with pytest.raises(MedsegError, match="did you mean 'epochs'"):
        load_recipe(path)


def test_unknown_section_is_rejected(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[trian]\nepochs = 3\n")
    with pytest.raises(MedsegError, match="did you mean 'train'"):
        load_recipe(path)


def test_set_overrides_and_types(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[train]\nepochs = 3\nlr = 0.01\n")
    recipe = load_recipe(path, ["train.lr=0.001", "train.amp=false", "plan.roi_size=[8, 8, 8]"])
    assert recipe.train.epochs == 3
    assert recipe.train.lr == pytest.approx(0.001)
    assert recipe.train.amp is False
    assert recipe.plan.roi_size == [8, 8, 8]
    with pytest.raises(MedsegError, match="train.epochs must be a valid integer"):
        load_recipe(path, ["train.epochs=many"])


def test_shipped_recipes_parse():
    from pathlib import Path

    recipes = Path(__file__).resolve().parents[2].joinpath("pipelines").rglob("*.toml")
    training = [r for r in recipes if r.parent.name != "cascade"]   # cascade recipes: tests/cascade
    assert training
    for recipe in training:
        load_recipe(recipe)
