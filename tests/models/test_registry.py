"""The registry: names, suggestions, overrides, tags, meta-device counting."""
from __future__ import annotations

import pytest

from medseg.core.card import ModelCard
from medseg.core.errors import MedsegError
from medseg.models import (
    count_parameters,
    create_model,
    get_card,
    list_models,
    register_model,
)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(MedsegError, match="did you mean 'swin_unetr'"):
        get_card("swinunetr")
    with pytest.raises(MedsegError, match="unknown model 'zzz'"):
        create_model("zzz")


def test_unknown_option_is_a_clear_error():
    with pytest.raises(MedsegError, match="unknown option.*did you mean 'feature_size'"):
        create_model("swin_unetr", featuresize=24)


def test_list_models_patterns_and_tags():
    assert list_models("stunet_?") == ["stunet_b", "stunet_h", "stunet_l", "stunet_s", "stunet_t"]
    tagged = list_models("swin*", pretrained=True)
    assert "swin_unetr.btcv" in tagged and "swin_unetr_brats.fold4" in tagged


def test_overriding_classes_renames_labels_and_keeps_the_registered_card():
    model = create_model("stunet_t", out_channels=4)
    assert model.card.labels == ("background", "class_1", "class_2", "class_3")
    assert get_card("stunet_t").out_channels == 3


def test_missing_pretrained_weights_explain_where_to_put_them(tmp_path):
    with pytest.raises(MedsegError, match="not found") as info:
        create_model("stunet_s.totalseg", weights_dir=tmp_path, width=2)
    assert "medseg models import stunet_s.totalseg" in str(info.value)
    with pytest.raises(MedsegError, match="no pretrained tag 'nope'"):
        create_model("stunet_s", pretrained="nope")


def test_duplicate_registration_is_refused():
    card = get_card("stunet_t")
    with pytest.raises(ValueError, match="already registered"):
        register_model(card)(lambda c: None)


def test_count_parameters_needs_no_memory():
    assert count_parameters("stunet_h") > 1_400_000_000
    assert count_parameters("stunet_t") == count_parameters("stunet_t", out_channels=3)


def test_a_new_model_is_one_decorated_function():
    from torch import nn

    from medseg.models import _registry

    card = ModelCard(name="_test_tiny", spatial_dims=2, in_channels=1, out_channels=2,
                     labels=("background", "x"), roi_size=(8, 8))

    @register_model(card)
    def build(card, *, width: int = 3):
        return nn.Conv2d(card.in_channels, card.out_channels, 1)

    try:
        assert create_model("_test_tiny").card is card
        assert "_test_tiny" in list_models()
    finally:
        del _registry._REGISTRY["_test_tiny"]
