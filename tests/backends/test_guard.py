import numpy as np
import pytest
import torch

from medseg.backends import GUARD_DICE, compare_label_maps


def test_identical_maps_agree_fully():
    a = np.random.default_rng(0).integers(0, 3, (8, 9, 10))
    result = compare_label_maps(a, a.copy())
    assert result.dice == {1: 1.0, 2: 1.0}
    assert result.changed_fraction == 0.0 and result.passes()


def test_dice_and_changed_fraction_follow_the_changed_voxels():
    a = np.zeros((10, 10, 10), np.uint8)
    a[:2, :2, :2] = 1                      # 8 voxels of label 1
    b = a.copy()
    b[0, :2, :2] = 2                       # 4 of them become label 2
    result = compare_label_maps(torch.from_numpy(a), b)
    assert result.dice[1] == pytest.approx(2 * 4 / (8 + 4))
    assert result.dice[2] == 0.0           # label 2 only in b
    assert result.changed_fraction == pytest.approx(4 / 1000)
    assert result.min_dice == 0.0 and not result.passes(GUARD_DICE)


def test_background_and_explicit_labels():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 1
    assert set(compare_label_maps(a, b).dice) == {1}
    assert set(compare_label_maps(a, b, include_background=True).dice) == {0, 1}
    assert compare_label_maps(a, b, labels=[5]).dice == {5: 1.0}   # absent from both: no disagreement


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        compare_label_maps(np.zeros((2, 2)), np.zeros((2, 3)))


def _hippocampus_model():
    """The shipped hippocampus model when its weights are present, else STU-Net-T with seeded weights."""
    from medseg.core.errors import MedsegError
    from medseg.models import create_model

    try:
        return create_model("stunet_t.hippocampus").eval()
    except MedsegError:
        torch.manual_seed(0)
        return create_model("stunet_t").eval()


@pytest.mark.shared
def test_cpu_default_and_fp32_backends_keep_real_labels_within_the_guard(shared_data, cache_root):
    """On a real hippocampus MR, each label's Dice against PyTorch fp32 stays >= 0.999."""
    from monai.inferers import sliding_window_inference

    from medseg.backends import available_backends, get_predictor
    from medseg.io import read_image

    model = _hippocampus_model()
    roi = model.card.roi_size
    image = torch.as_tensor(np.asarray(read_image(shared_data / "msd_hippocampus/imagesTr/hippocampus_001.nii.gz")),
                            dtype=torch.float32)[None]
    image = (image - image.mean()) / image.std()
    with torch.no_grad():
        ref = sliding_window_inference(image, roi, 1, model, overlap=0.5, mode="gaussian").argmax(1)
    arms = [("auto", "auto")] + [(b, "fp32") for b in available_backends() if b != "torch"]
    for backend, precision in arms:
        predictor = get_predictor(model, backend=backend, precision=precision, roi_size=roi, cache_dir=cache_root,
                                  device="cpu", threads=1)
        got = sliding_window_inference(image, roi, 1, predictor, overlap=0.5, mode="gaussian").argmax(1)
        agreement = compare_label_maps(got, ref, labels=(1, 2))
        assert agreement.passes(GUARD_DICE), f"{predictor.describe()}: {agreement}"


def test_guard_judges_tiny_labels_by_changed_voxels_not_their_dice():
    a = np.zeros((40, 40, 40), dtype=np.int16)
    a[:20] = 1                      # 32000 voxels
    a[30, 30, 30:33] = 2            # a 3-voxel label
    b = a.copy()
    b[30, 30, 32] = 0               # one voxel of it flipped: Dice 0.8
    result = compare_label_maps(a, b)
    assert result.dice[2] == 0.8 and not result.passes(GUARD_DICE)
    assert result.passes_guard(GUARD_DICE)   # one voxel, as for a label of GUARD_MIN_VOXELS voxels at Dice 0.999
    b[30, 30, 30:33] = 0            # the whole tiny label lost: refused
    assert not compare_label_maps(a, b).passes_guard(GUARD_DICE)
    big = a.copy()
    big[:1] = 0                     # a large label keeps its plain Dice (1600 of 32000 voxels lost)
    assert compare_label_maps(a, big).min_guard_dice() == compare_label_maps(a, big).dice[1] < GUARD_DICE
