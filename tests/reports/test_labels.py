import json

import pytest

from medseg.core.errors import MedsegError
from medseg.reports.labels import (
    label_name,
    names_from_card_labels,
    names_from_dataset_json,
    parse_labels,
)


def test_msd_and_nnunet_dataset_json(tmp_path):
    msd = tmp_path / "msd.json"
    msd.write_text(json.dumps({"labels": {"0": "background", "1": "Anterior", "2": "Posterior"}}))
    assert names_from_dataset_json(msd) == {0: "background", 1: "Anterior", 2: "Posterior"}
    nnunet = tmp_path / "nnunet.json"
    nnunet.write_text(json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2, "whole": [1, 2]}}))
    assert names_from_dataset_json(nnunet) == {0: "background", 1: "liver", 2: "tumour"}


def test_bad_dataset_json(tmp_path):
    with pytest.raises(MedsegError, match="not found"):
        names_from_dataset_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MedsegError, match="not valid JSON"):
        names_from_dataset_json(bad)
    bad.write_text('{"name": "x"}')
    with pytest.raises(MedsegError, match="no 'labels'"):
        names_from_dataset_json(bad)


def test_parse_labels_by_value_and_name():
    names = names_from_card_labels(("background", "anterior", "posterior"))
    assert parse_labels("1,2", names) == [1, 2]
    assert parse_labels("Posterior, 1", names) == [2, 1]
    assert parse_labels([2, "anterior", 2], names) == [2, 1]
    assert parse_labels(None, names) is None
    with pytest.raises(MedsegError, match="unknown label 'tail'") as info:
        parse_labels("tail", names)
    assert "1=anterior" in str(info.value)
    with pytest.raises(MedsegError, match="background"):
        parse_labels("0", names)
    assert label_name(7, names) == "label_7" and label_name(1, names) == "anterior"
