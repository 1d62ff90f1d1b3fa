import csv
import json

import numpy as np

from medseg.inference.stats import label_statistics, write_statistics


def test_volumes_means_and_border_flags(tmp_path):
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[2:4, 2:4, 2:4] = 1            # 8 voxels inside
    labels[0:2, 5:7, 5:6] = 2            # 4 voxels touching the x=0 face
    image = np.where(labels == 1, 100.0, 0.0) + np.where(labels == 2, -50.0, 0.0)
    rows = label_statistics(labels, image, (0.5, 0.5, 2.0), ("background", "a", "b", "c"))
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    a, b, c = rows
    assert a["voxels"] == 8 and a["volume_ml"] == 8 * 0.5 / 1000 and a["mean_intensity"] == 100.0
    assert not a["touches_border"] and b["touches_border"]
    assert b["mean_intensity"] == -50.0
    assert c["voxels"] == 0 and c["mean_intensity"] is None
    write_statistics(rows, tmp_path / "s.csv", tmp_path / "s.json", extra={"case": "x"})
    table = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert table[1]["touches_border"] == "True" and table[2]["mean_intensity"] == ""
    assert json.loads((tmp_path / "s.json").read_text())["structures"][0]["voxels"] == 8


def test_slabs_give_the_same_answer(monkeypatch, rng):
    from medseg.inference import stats

    labels = rng.integers(0, 4, (20, 20, 20)).astype(np.uint8)
    image = rng.normal(size=labels.shape)
    whole = label_statistics(labels, image, (1, 1, 1), ("bg", "a", "b", "c"))
    monkeypatch.setattr(stats, "SLAB_VOXELS", 777)
    assert label_statistics(labels, image, (1, 1, 1), ("bg", "a", "b", "c")) == whole
