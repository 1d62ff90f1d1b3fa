"""Nothing lost: no command writes onto one of its own inputs, and a training run folder with a checkpoint
is never replaced without --resume or --overwrite (issue 16, items 1-3)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from medseg.io import write_image
from tests.adversarial._probe import (
    assert_one_line_error,
    leftovers,
    model_args,
    run,
    scan,
    snapshot,
)


def test_predict_onto_its_own_input_file_is_refused(tmp_path, monkeypatch, capsys):
    x, args = scan(tmp_path / "x.nii.gz"), model_args(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = run(monkeypatch, capsys, "predict", x, "-o", x, *args)
    assert_one_line_error(code, err, [x, "-o"])
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_predict_onto_a_link_to_its_input_is_refused(tmp_path, monkeypatch, capsys, link):
    x = scan(tmp_path / "in" / "x.nii.gz")
    out = tmp_path / "out.nii.gz"
    os.symlink(x, out) if link == "symlink" else os.link(x, out)
    before = snapshot(tmp_path / "in")
    code, _, err = run(monkeypatch, capsys, "predict", x, "-o", out, *model_args(tmp_path))
    assert_one_line_error(code, err, out)
    assert snapshot(tmp_path / "in") == before and not leftovers(tmp_path)


@pytest.mark.parametrize("via_symlink", [False, True])
def test_predict_folder_into_itself_is_refused(tmp_path, monkeypatch, capsys, via_symlink):
    folder = tmp_path / "scans"
    for i in range(2):
        scan(folder / f"c{i}.nii.gz", seed=i)
    out = folder
    if via_symlink:
        out = tmp_path / "alias"
        os.symlink(folder, out)
    before = snapshot(folder)
    code, _, err = run(monkeypatch, capsys, "predict", folder, "-o", out, *model_args(tmp_path))
    assert_one_line_error(code, err, "never writes onto its inputs")
    assert snapshot(folder) == before


def test_predict_probabilities_onto_an_input_named_like_them_is_refused(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "scans"
    a = scan(folder / "a.nii.gz")
    clash = scan(folder / "a_seg_probabilities.nii.gz", seed=1)  # a scan that happens to carry that name
    before = snapshot(folder)
    code, _, err = run(monkeypatch, capsys, "predict", a, clash, "--probabilities", *model_args(tmp_path))
    assert_one_line_error(code, err, clash.name)
    assert snapshot(folder) == before


def _label(path, seed):
    rng = np.random.default_rng(seed)
    write_image(rng.integers(0, 3, (1, 8, 8, 8)).astype(np.uint8), path, affine=np.eye(4))
    return path


@pytest.mark.parametrize("target", ["pred", "ref", "ref_hardlink", "ref_in_folder"])
def test_evaluate_json_onto_an_input_is_refused(tmp_path, monkeypatch, capsys, target):
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    pred, ref = _label(tmp_path / "p" / "a.nii.gz", 0), _label(tmp_path / "r" / "a.nii.gz", 1)
    args = [pred, ref]
    out = {"pred": pred, "ref": ref, "ref_hardlink": tmp_path / "link.nii.gz", "ref_in_folder": ref}[target]
    if target == "ref_hardlink":
        os.link(ref, out)
    if target == "ref_in_folder":
        args = [tmp_path / "p", tmp_path / "r"]
    before = snapshot(tmp_path)
    code, _, err = run(monkeypatch, capsys, "evaluate", *args, "--json", out, "-j", "1")
    assert_one_line_error(code, err, [out, "--json"])
    assert snapshot(tmp_path) == before


def test_evaluate_report_onto_an_input_is_refused(tmp_path, monkeypatch, capsys):
    pred, ref = _label(tmp_path / "a.nii.gz", 0), _label(tmp_path / "b.nii.gz", 1)
    names = tmp_path / "metrics.csv"   # a label-names file that carries the name of a report file
    names.write_text('{"labels": {"0": "background", "1": "a", "2": "b"}}')
    before = snapshot(tmp_path)
    code, _, err = run(monkeypatch, capsys, "evaluate", pred, ref, "--dataset-json", names, "--report", tmp_path,
                       "-j", "1")
    assert_one_line_error(code, err, [names, "--report"])
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("link", [None, "symlink"])
def test_convert_onto_its_source_is_refused(tmp_path, monkeypatch, capsys, link):
    x = scan(tmp_path / "x.nii.gz")
    target = x
    if link:
        target = tmp_path / "y.nii.gz"
        os.symlink(x, target)
    before = snapshot(tmp_path)
    code, _, err = run(monkeypatch, capsys, "convert", x, target)
    assert_one_line_error(code, err, "TARGET")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- training run folders


def _recipe(tmp_path, run_dir, dataset=None):
    dataset = dataset or tmp_path / "data"
    dataset.mkdir(exist_ok=True)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[data]\ndataset = '{dataset}'\n[model]\nname = 'stunet_t'\n[train]\n"
                      f"output = '{run_dir}'\nepochs = 1\n")
    return recipe


def _old_run(run_dir):
    run_dir.mkdir(parents=True)
    (run_dir / "best.pt").write_bytes(b"best weights of a week-long run")
    (run_dir / "last.pt").write_bytes(b"last")
    (run_dir / "history.csv").write_text("epoch,loss\n0,1.0\n")
    return snapshot(run_dir)


def test_train_into_a_run_with_a_checkpoint_needs_resume_or_overwrite(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "runs" / "week"
    before = _old_run(run_dir)
    code, _, err = run(monkeypatch, capsys, "train", _recipe(tmp_path, run_dir))
    line = assert_one_line_error(code, err, [run_dir, "--resume", "--overwrite", "train.output"])
    assert "run folder has a checkpoint" in line
    assert snapshot(run_dir) == before


def test_finetune_into_a_run_with_a_checkpoint_needs_resume_or_overwrite(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "ft"
    before = _old_run(run_dir)
    (tmp_path / "data").mkdir()
    code, _, err = run(monkeypatch, capsys, "finetune", "--from", "stunet_t.hippocampus", "--data",
                       tmp_path / "data", "-o", run_dir)
    assert_one_line_error(code, err, [run_dir, "run folder has a checkpoint"])
    assert snapshot(run_dir) == before


def test_finetune_onto_its_own_from_checkpoint_is_refused(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "ft"
    before = _old_run(run_dir)
    (tmp_path / "data").mkdir()
    code, _, err = run(monkeypatch, capsys, "finetune", "--from", run_dir / "best.pt", "--model", "stunet_t",
                       "--data", tmp_path / "data", "-o", run_dir, "--resume")
    assert_one_line_error(code, err, [run_dir / "best.pt", "never writes onto its inputs"])
    assert snapshot(run_dir) == before


def test_train_output_inside_the_dataset_is_refused(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.json").write_text("{}")
    before = snapshot(data)
    code, _, err = run(monkeypatch, capsys, "train", _recipe(tmp_path, data, dataset=data))
    assert_one_line_error(code, err, "never writes onto its inputs")
    assert snapshot(data) == before


class _FakeFit:
    """Stands in for ``medseg.training.fit``: writes a checkpoint after ``fail_before`` epochs, or raises."""

    def __init__(self, fail_first: bool) -> None:
        self.fail_first = fail_first

    def __call__(self, recipe, *, on_epoch=None, **_):
        from pathlib import Path

        from medseg.core.errors import MedsegError
        from medseg.training.loop import FitResult

        out = Path(recipe.train.output)
        if self.fail_first:
            raise MedsegError("non-finite loss at epoch 0")
        self.seen_old = sorted(p.name for p in out.parent.iterdir() if ".old-" in p.name)
        out.mkdir(parents=True, exist_ok=True)
        (out / "last.pt").write_bytes(b"new")
        on_epoch({"epoch": 0, "train_loss": 1.0})
        return FitResult(out, 0.5, 0, 1, 0.1, [])


def test_overwrite_moves_the_old_run_aside_until_the_first_new_checkpoint(tmp_path, monkeypatch, capsys):
    import medseg.training

    run_dir = tmp_path / "runs" / "week"
    _old_run(run_dir)
    fake = _FakeFit(fail_first=False)
    monkeypatch.setattr(medseg.training, "fit", fake)
    code, _, err = run(monkeypatch, capsys, "train", _recipe(tmp_path, run_dir), "--overwrite")
    assert code == 0, err
    assert len(fake.seen_old) == 1 and fake.seen_old[0].startswith("week.old-")   # kept while training started
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["week"]          # dropped after the checkpoint
    assert (run_dir / "last.pt").read_bytes() == b"new"


def test_overwrite_puts_the_old_run_back_when_the_new_one_fails_early(tmp_path, monkeypatch, capsys):
    import medseg.training

    run_dir = tmp_path / "runs" / "week"
    before = _old_run(run_dir)
    monkeypatch.setattr(medseg.training, "fit", _FakeFit(fail_first=True))
    code, _, err = run(monkeypatch, capsys, "train", _recipe(tmp_path, run_dir), "--overwrite")
    assert code == 2 and "error: non-finite loss" in err and "Traceback" not in err
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["week"]
    assert snapshot(run_dir) == before
