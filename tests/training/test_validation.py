import json

import numpy as np
import pytest

from medseg.core.errors import MedsegError
from medseg.io import write_image
from medseg.training.datalist import load_dataset
from medseg.training.validation import validate_dataset


def test_every_problem_is_listed_with_its_file(msd_dataset):
    # case 0: label with a stray value; case 1: label on another grid; case 2: label missing
    write_image(np.full((1, 20, 20, 20), 7, np.uint8), msd_dataset / "labelsTr" / "case_000.nii.gz")
    write_image(np.zeros((1, 20, 20, 19), np.uint8), msd_dataset / "labelsTr" / "case_001.nii.gz")
    (msd_dataset / "labelsTr" / "case_002.nii.gz").unlink()
    with pytest.raises(MedsegError) as info:
        validate_dataset(load_dataset(msd_dataset))
    text = str(info.value)
    assert "3 problem(s)" in text
    assert "case_000.nii.gz: label values [7]" in text
    assert "case_001.nii.gz: shape (20, 20, 19)" in text
    assert "missing label for case case_002" in text


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background"}, "training": []}))
    with pytest.raises(MedsegError, match="empty"):
        validate_dataset(load_dataset(tmp_path))


def test_csv_list(tmp_path, msd_dataset):
    csv = tmp_path / "pairs.csv"
    csv.write_text("image,label\n" + "".join(
        f"{msd_dataset}/imagesTr/case_00{i}.nii.gz,{msd_dataset}/labelsTr/case_00{i}.nii.gz\n" for i in range(3)))
    dataset = load_dataset(csv)
    assert [c["case"] for c in dataset.cases] == ["case_000", "case_001", "case_002"]
    validate_dataset(dataset)


def test_fingerprint_and_plan(msd_dataset):
    from medseg.models import get_card
    from medseg.training.fingerprint import fingerprint, make_plan, target_spacing

    fp = fingerprint(load_dataset(msd_dataset))
    assert fp["cases"] == 6 and fp["shapes"][0] == [20, 20, 20]
    assert set(fp["label_voxels"]) == {"0", "1", "2"}
    assert fp["foreground_intensity"]["mean"] > 20          # blobs are brighter than background
    plan = make_plan(fp, get_card("stunet_t"))
    assert plan["spacing"] == [1.0, 1.0, 1.0]
    assert plan["roi_size"] == [24, 24, 24]                  # median shape rounded up to the divisibility 8
    assert plan["intensity"]["kind"] == "zscore"             # MRI: per-image z-score
    # anisotropic data: the coarse axis takes the 10th percentile, as nnU-Net does
    assert target_spacing([[0.8, 0.8, 5.0]] * 5 + [[0.8, 0.8, 1.0]] * 5) == [0.8, 0.8, 1.0]
