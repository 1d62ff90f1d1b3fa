"""The top-level API a notebook user types first."""
import medseg
from tests.conftest import SAMPLE, SAMPLE_LABEL


def test_top_level_predict_and_evaluate_on_the_sample_scan():
    labels = medseg.predict(SAMPLE, tta=False)
    reference = medseg.read_image(SAMPLE_LABEL)
    assert labels.shape[-3:] == reference.shape[-3:]
    assert (labels.affine == reference.affine).all()
    result = medseg.evaluate(labels, reference)
    dice = {row["label"]: row["dice"] for row in result.to_dict()["cases"]}
    assert dice[1] > 0.8 and dice[2] > 0.8   # the shipped model on a case it was trained on
