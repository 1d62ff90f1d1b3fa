"""Live parity with TotalSegmentator's own pipeline on stand-in part folders (real task folder names and label
sets, seeded random networks) under a temporary TOTALSEG_HOME_DIR; needs a python with totalsegmentator
(``MEDSEG_TOTALSEG_PYTHON``, /work/venv-ts2 or /work/venv-totalseg) and the shared example CT::

    PYTHONPATH=$PWD python -m pytest -m peer tests/totalseg/test_peer.py
"""
from __future__ import annotations

import pytest

from tests.totalseg._peer import EXAMPLES, parity, peer_python, prepare_home

PYTHON = peer_python()
pytestmark = [pytest.mark.peer, pytest.mark.slow,
              pytest.mark.skipif(PYTHON is None, reason="no python with totalsegmentator"),
              pytest.mark.skipif(not (EXAMPLES / "example_ct_sm.nii.gz").exists(), reason="no shared example CT")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return prepare_home(tmp_path_factory.mktemp("tsh"))


@pytest.mark.parametrize("mode,labels", [("fast", None), ("fast", ["auto"]), ("total", None), ("total", ["auto"])])
def test_same_label_map_ids_and_names_as_totalsegmentator(home, tmp_path, mode, labels):
    row = parity(PYTHON, home, EXAMPLES / "example_ct_sm.nii.gz", tmp_path, mode, labels)
    assert row["exact_agreement"] >= 0.999, row
    assert row["exact_same_ids_present"] and row["exact_same_names"], row
    assert row["exact_ids_theirs"] >= (2 if labels else 20), row  # a map worth comparing
    assert row["default_same_names"] and row["default_agreement"] >= 0.99, row
