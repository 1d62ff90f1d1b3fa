from pathlib import Path

import pytest

from medseg.core.errors import MedsegError
from medseg.inference.cases import parse_shard, plan_cases, select_shard, shard_from_env


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_one_input_and_a_file_output(tmp_path):
    scan = _touch(tmp_path / "a.nii.gz")
    (case,) = plan_cases([scan], tmp_path / "out" / "seg.nii.gz")
    assert case.name == "a" and case.output == tmp_path / "out" / "seg.nii.gz"


def test_folder_keeps_case_names_and_formats(tmp_path):
    for name in ("b.nrrd", "a.nii.gz", "c.jpg", "d.mhd", "notes.txt", ".hidden.nii.gz"):
        _touch(tmp_path / "in" / name)
    _touch(tmp_path / "in" / "series" / "1.dcm")
    cases = plan_cases([tmp_path / "in"], tmp_path / "out")
    assert [(c.name, c.output.name) for c in cases] == [
        ("a", "a.nii.gz"), ("b", "b.nrrd"), ("c", "c.png"), ("d", "d.mha"), ("series", "series.nii.gz")]
    per_class = plan_cases([tmp_path / "in"], tmp_path / "out", "per-class")
    assert per_class[0].output == tmp_path / "out" / "a"


def test_default_outputs_sit_next_to_inputs(tmp_path):
    scan = _touch(tmp_path / "x" / "a.mha")
    assert plan_cases([scan])[0].output == tmp_path / "x" / "a_seg.mha"
    folder_case = plan_cases([tmp_path / "x"])[0]
    assert folder_case.output == tmp_path / "x_seg" / "a.mha"


def test_usage_errors(tmp_path):
    a, b = _touch(tmp_path / "a.nii.gz"), _touch(tmp_path / "sub" / "a.nii.gz")
    with pytest.raises(MedsegError, match="2 inputs"):
        plan_cases([a, b], tmp_path / "seg.nii.gz")
    with pytest.raises(MedsegError, match="same output"):
        plan_cases([a, b], tmp_path / "out")
    with pytest.raises(MedsegError, match="not found"):
        plan_cases([tmp_path / "missing.nii.gz"])
    with pytest.raises(MedsegError, match="needs a folder"):
        plan_cases([a], tmp_path / "seg.nii.gz", "per-class")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedsegError, match="no scans"):
        plan_cases([tmp_path / "empty"])


def test_shards_partition_the_cases(tmp_path, monkeypatch):
    for i in range(7):
        _touch(tmp_path / "in" / f"c{i}.nii.gz")
    cases = plan_cases([tmp_path / "in"], tmp_path / "out")
    parts = [select_shard(cases, *parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(c.name for p in parts for c in p) == sorted(c.name for c in cases)
    assert [len(p) for p in parts] == [3, 2, 2]
    for bad in ("3/3", "1-3", "0/0"):
        with pytest.raises(MedsegError):
            parse_shard(bad)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert shard_from_env() == (1, 4)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert shard_from_env() is None
