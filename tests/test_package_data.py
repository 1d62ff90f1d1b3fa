"""What the default model and the cascade lookups need is package data, found through importlib.resources.

The wheel carries only what ``setup.cfg``'s ``package_data`` names, so every file under ``medseg/data`` must
match one of its globs; the recipes in ``pipelines/`` (the user-facing copy) must equal the shipped ones.
``tests/test_wheel.py`` (slow) proves the same end to end with a real wheel.
"""
from __future__ import annotations

import configparser
import re
from importlib.resources import files
from pathlib import Path

import pytest

from medseg.core.hashing import sha256_file
from medseg.core.resources import package_data, pipelines_dir, pretrained_dir
from medseg.inference.model_loading import DEFAULT_MODEL
from medseg.models import weights
from medseg.models._registry import get_entry, split_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(str(files("medseg")))


def _package_data_globs() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["options.package_data"]["medseg"].replace(",", "\n").split()


def test_the_default_models_weights_are_found_inside_the_package_and_match_the_card(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSEG_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no ./pretrained to fall back on
    base, tag = split_name(DEFAULT_MODEL)
    entry = get_entry(base).card.get_pretrained(tag)
    found = weights.find_weights(entry.file)
    assert found is not None and found.parent == pretrained_dir() == PACKAGE / "data" / "pretrained"
    assert sha256_file(found) == entry.sha256
    assert not (ROOT / "pretrained" / entry.file).exists(), "one copy of the weights in git: medseg/data/pretrained"


def test_every_file_under_medseg_data_is_declared_package_data():
    globs = _package_data_globs()
    shipped = {p for g in globs for p in (ROOT / "medseg").glob(g)}
    present = {p for p in (ROOT / "medseg" / "data").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert present - shipped == set(), "add these to [options.package_data] in setup.cfg so the wheel has them"


def test_pipelines_recipes_and_the_shipped_copies_are_identical():
    top = {p.relative_to(ROOT / "pipelines") for p in (ROOT / "pipelines").rglob("*.toml")}
    shipped = {p.relative_to(pipelines_dir()) for p in pipelines_dir().rglob("*.toml")}
    assert top == shipped and top, "pipelines/ and medseg/data/pipelines/ must hold the same recipes"
    for rel in sorted(top):
        assert (ROOT / "pipelines" / rel).read_bytes() == (pipelines_dir() / rel).read_bytes(), (
            f"pipelines/{rel} differs from medseg/data/pipelines/{rel}: copy the edited one over the other")


def test_cascade_names_resolve_to_the_shipped_recipe_from_any_folder(tmp_path, monkeypatch):
    from medseg.cascade.loader import recipe_path

    monkeypatch.chdir(tmp_path)
    assert recipe_path("cascade.pancreas_ct") == pipelines_dir() / "cascade" / "pancreas_ct.toml"


@pytest.mark.parametrize("parts", [("sample", "hippocampus_001.nii.gz"), ("pretrained",), ("pipelines", "cascade")])
def test_package_data_paths_are_real_files_in_the_package(parts):
    assert package_data(*parts).exists() and package_data(*parts).is_relative_to(PACKAGE)


def test_no_library_code_finds_files_through_the_source_tree():
    pattern = re.compile(r"parents\[\d\]|\.\./pretrained|\.\./pipelines")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "medseg").rglob("*.py")
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == [], "use medseg.core.resources.package_data (a wheel has no source tree)"
