"""What a user reads: help texts, plurals, one-line errors without a blank line, hints that work."""
from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from medseg.cli.main import app
from tests.reports.conftest import make_case, save

runner = CliRunner()


def test_boolean_flags_are_shown_as_flags_and_lists_as_repeats():
    for command in (["models", "list", "--help"], ["predict", "--help"], ["evaluate", "--help"]):
        result = runner.invoke(app, command, env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "list[" not in result.output
    assert "<path>..." in runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "120"}).output


def test_train_help_shows_the_cascade_sections():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "120"})
    assert "[cascade]" in result.output and "[stage1.*]" in result.output and "[stage2.*]" in result.output


def test_models_list_in_a_pipe_cuts_no_name():
    result = runner.invoke(app, ["models", "list", "deeplab*"], env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["name", "dims", "in", "out", "activation", "params", "pretrained"]
    assert {line.split()[0] for line in lines[1:]} == {"deeplabv3plus_mobilenetv2", "deeplabv3plus_resnet"}
    assert "…" not in result.output


def test_output_with_an_unknown_image_extension_is_refused(tmp_path):
    scan = save(tmp_path / "scan.nii.gz", np.zeros((8, 8, 8), np.float32))
    result = runner.invoke(app, ["predict", str(scan), "-o", str(tmp_path / "seg.txt")])
    assert result.exit_code == 2
    assert "unknown image extension '.txt'" in result.stderr and "end it with /" in result.stderr
    assert not (tmp_path / "seg.txt").exists()


def _pair(tmp_path):
    pred, ref = make_case(1)
    return save(tmp_path / "p.nii.gz", pred), save(tmp_path / "r.nii.gz", ref)


def test_evaluate_says_one_case_and_reports_an_absent_label(tmp_path):
    pred, ref = _pair(tmp_path)
    result = runner.invoke(app, ["evaluate", str(pred), str(ref), "--labels", "1,7", "-j", "1"],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "1 case ·" in result.output and "1 cases" not in result.output
    assert "label 7 (label_7): in no prediction and no reference, not scored" in result.output
    assert "7 label_7" not in result.output  # no row of Dice 1 for it


def test_errors_start_on_the_first_line(tmp_path):
    _, ref = _pair(tmp_path)
    probabilities = save(tmp_path / "prob.nii.gz", np.random.default_rng(0).random((30, 26, 16), np.float32))
    result = runner.invoke(app, ["evaluate", str(probabilities), str(ref), "-j", "1"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_missing_recipe_dataset_suggests_set(tmp_path, monkeypatch):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nname = "stunet_t"\n[data]\ndataset = "no/such/folder"\n')
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", str(recipe)])
    assert result.exit_code == 2
    assert "--set data.dataset=PATH" in result.stderr and "no/such/folder" in result.stderr


def test_extra_hint_matches_the_installation(monkeypatch):
    from medseg.core import install

    monkeypatch.setattr(install, "_editable_source", lambda: "/home/me/medseg")
    assert install.extra_hint("cpu") == 'the medseg[cpu] extra: pip install -e ".[cpu]" in /home/me/medseg'
    monkeypatch.setattr(install, "_editable_source", lambda: None)
    assert install.extra_hint("cpu") == 'pip install "medseg[cpu]"'


def test_view_writes_a_page_and_refuses_a_non_html_output(tmp_path):
    pred, ref = _pair(tmp_path)
    bad = runner.invoke(app, ["view", str(ref), str(pred), "-o", str(tmp_path / "page.png")])
    assert bad.exit_code == 2 and "use e.g. -o page.html" in bad.stderr
    ok = runner.invoke(app, ["view", str(ref), str(pred), "--reference", str(ref), "-o", str(tmp_path / "v.html")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "v.html").stat().st_size > 2_000_000 and "wrote" in ok.stderr
