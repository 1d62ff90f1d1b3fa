"""The output-head contract: what each kind of model's channels mean, in one place (medseg.models.heads)."""
from __future__ import annotations

import pytest
import torch

from medseg.core.card import CardError, Intensity, ModelCard
from medseg.core.errors import MedsegError
from medseg.inference.predictor import Predictor
from medseg.models import create_model, get_card
from medseg.models.heads import (
    RegionHead,
    SigmoidHead,
    SoftmaxHead,
    TrainLoss,
    head_for,
)
from medseg.training.losses import DiceBCELoss, DiceCELoss
from medseg.transforms import build_preprocessing


def test_brats_regions_decode_in_painting_order_and_train_on_nested_targets():
    head = head_for(get_card("swin_unetr_brats"))
    assert isinstance(head, RegionHead) and isinstance(head.segmentation_loss(), DiceBCELoss)
    assert head.label_names[:5] == ("background", "tumor_core", "whole_tumor", "label_3", "enhancing_tumor")
    # channels: tumor_core, whole_tumor, enhancing_tumor; a voxel where all three fire is enhancing (4),
    # whole tumour only is edema (2), core without enhancing is 1, nothing is 0
    logits = torch.full((1, 3, 4), -5.0)
    logits[0, :, 0] = 5.0
    logits[0, 1, 1] = 5.0
    logits[0, 0:2, 2] = 5.0
    assert head.decode(logits).tolist() == [[4, 2, 1, 0]]
    target = head.target(torch.tensor([[[4, 2, 1, 0]]]))
    assert target[0].tolist() == [[1, 0, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0]]
    assert dict(head.classes())["whole_tumor"] == frozenset({1, 2, 4})


def test_a_sigmoid_threshold_other_than_a_half_compares_weighted_sums():
    card = ModelCard(name="t", spatial_dims=2, in_channels=1, out_channels=1, labels=("fg",), activation="sigmoid",
                     roi_size=(8, 8), postprocess={"threshold": 0.7})
    head = head_for(card)
    assert isinstance(head, SigmoidHead) and head.default_threshold == 0.7
    # mean logit 0.5 (probability 0.62): above 0.5, below 0.7; the weight sum is 2
    sums, weight = torch.full((1, 3), 1.0), torch.full((3,), 2.0)
    assert head.decide(sums, weight, 0.5).tolist() == [1, 1, 1]
    assert head.decide(sums, weight, 0.7).tolist() == [0, 0, 0]


def test_the_loss_follows_the_label_setup():
    assert isinstance(head_for(get_card("stunet_t")).segmentation_loss(), DiceCELoss)
    assert isinstance(head_for(get_card("basnet")).segmentation_loss(), DiceBCELoss)
    assert isinstance(head_for(get_card("stunet_t")), SoftmaxHead)


def test_dict_outputs_sum_every_prediction_and_the_auxiliary_loss():
    seg = TrainLoss(DiceCELoss())
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    a, b = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    aux = torch.tensor(0.25)
    total = seg({"logits": a, "predictions": [a, b], "aux_loss": aux}, label)
    assert float(total) == pytest.approx(float(DiceCELoss()(a, label) + DiceCELoss()(b, label) + aux), rel=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"keep_largest": True, "smooth": 2}, "unknown postprocess keys"),
    ({"threshold": 1.5}, "strictly between 0 and 1"),
    ({"label_values": {"whole_tumor": 2}}, "must name every output channel"),
    ({"label_values": {"whole_tumor": 2, "tumor_core": 2, "enhancing_tumor": 4}}, "distinct integers"),
])
def test_a_bad_postprocess_entry_is_refused_when_the_card_is_built(bad, message):
    with pytest.raises(CardError, match=message) as info:
        get_card("swin_unetr_brats").replace(postprocess=bad)
    assert isinstance(info.value, MedsegError) and "\n" not in str(info.value)


def test_the_brats_card_predicts_with_its_own_postprocess_entry():
    model = create_model("swin_unetr_brats", feature_size=12, window_size=4, roi_size=(32, 32, 64))
    predictor = Predictor(model, options=None)
    assert predictor.threshold == 0.5 and not predictor.postprocess.active
    assert predictor.label_names[4] == "enhancing_tumor"


def test_nonzero_intensity_normalises_inside_the_brain_and_keeps_the_background():
    card = get_card("swin_unetr_brats").replace(roi_size=(32, 32, 64))
    assert card.intensity == Intensity(kind="zscore", nonzero=True)
    image = torch.zeros(4, 6, 6, 6)
    image[:, 1:5, 1:5, 1:5] = torch.rand(4, 4, 4, 4) * 100 + 500
    from monai.data import MetaTensor

    out = build_preprocessing(card)({"image": MetaTensor(image, affine=torch.eye(4))})["image"].as_tensor()
    inside = out[:, 1:5, 1:5, 1:5]
    assert torch.count_nonzero(out[:, 0]) == 0                                 # the background stays 0
    assert inside.mean(dim=(1, 2, 3)).abs().max() < 1e-4                      # mean 0 inside each channel
    assert (inside.std(dim=(1, 2, 3)) - 1).abs().max() < 0.05
    with pytest.raises(CardError, match="nonzero applies to zscore"):
        card.replace(intensity=Intensity(kind="minmax", nonzero=True))


def test_training_fits_per_label_heads_to_the_dataset_and_keeps_region_channels():
    names = ("background", "liver", "spleen")
    softmax = head_for(get_card("stunet_t")).fit_labels(names)
    assert softmax == {"labels": names, "out_channels": 3}
    sigmoid = head_for(get_card("basnet")).fit_labels(names)
    assert sigmoid == {"labels": ("liver", "spleen"), "out_channels": 2}
    assert head_for(get_card("swin_unetr_brats")).fit_labels(names) == {}
