import json

from typer.testing import CliRunner

import medseg
from medseg.cli.main import app
from tests.conftest import SAMPLE_LABEL

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert medseg.__version__ in result.output


def test_info_json_on_label_map():
    result = runner.invoke(app, ["info", str(SAMPLE_LABEL), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["shape"] == [35, 51, 35]
    assert summary["labels"] == [1, 2]
    assert summary["orientation"] == "RAS"
