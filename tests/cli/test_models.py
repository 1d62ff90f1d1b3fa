"""``medseg models``: list, show, import, hash."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from medseg.cli.main import app
from medseg.core.hashing import sha256_file
from tests.models.official_checkpoints import official_stunet_state, save_nnunet_v1

runner = CliRunner()


def test_list_json_has_every_model_with_params_and_tags():
    result = runner.invoke(app, ["models", "list", "stunet*", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == {"stunet_s", "stunet_b", "stunet_l", "stunet_h", "stunet_t"}
    assert rows["stunet_h"]["params"] == 1_457_326_221 and rows["stunet_h"]["pretrained"] == ["totalseg"]
    assert rows["stunet_t"]["dims"] == 3


def test_show_prints_card_and_weights():
    result = runner.invoke(app, ["models", "show", "stunet_b"])
    assert result.exit_code == 0, result.output
    assert "58,262,669" in result.output and "base_ep4k.model" in result.output
    result = runner.invoke(app, ["models", "show", "swin_unetr_brats", "--json"])
    card = json.loads(result.output)
    assert card["labels"] == ["tumor_core", "whole_tumor", "enhancing_tumor"] and card["params"] == 62_191_941


def test_unknown_model_suggests(tmp_path):
    result = runner.invoke(app, ["models", "show", "stunet-b"])
    assert result.exit_code == 2
    assert "did you mean 'stunet_b'" in result.output


def test_import_and_hash(tmp_path):
    src = save_nnunet_v1(official_stunet_state(c0=16, blocks=1), tmp_path / "dl.model")  # fits stunet_s
    result = runner.invoke(app, ["models", "import", "stunet_s", str(src), "--weights-dir", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / "small_ep4k.model").is_file()
    result = runner.invoke(app, ["models", "hash", str(src)])
    assert result.exit_code == 0 and sha256_file(src) in result.output
