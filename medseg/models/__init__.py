"""The model zoo: every network is created, described and given weights the same way.

Adding a model is one file in this folder that decorates its builder with ``@register_model(card)``;
the registry imports every sibling module on its first look-up (``get_card``, ``list_models``,
``create_model`` ...), so no list needs editing (helper modules start with ``_``) and importing a helper
such as ``medseg.models.heads`` does not import every network (MONAI's among them).

Forward contract: eval mode returns logits ``(B, out_channels, *spatial)``; training mode returns
logits, a tuple of logits (full resolution first) when ``card.deep_supervision > 0``, or a dict with
auxiliary predictions and losses (the guided-attention network); :func:`unpack_train_output` reads all three
by their type, so nothing branches on the model.
"""
from medseg.models._adapt import LoadReport, adapt_state_dict
from medseg.models._outputs import TrainOutput, unpack_train_output
from medseg.models._registry import (
    count_parameters,
    create_model,
    get_card,
    get_entry,
    list_models,
    register_model,
)
from medseg.models._stunet_import import load_official_stunet
from medseg.models._swin_import import load_monai_checkpoint, load_swin_ssl_encoder

__all__ = [
    "LoadReport",
    "TrainOutput",
    "adapt_state_dict",
    "count_parameters",
    "create_model",
    "get_card",
    "get_entry",
    "list_models",
    "load_monai_checkpoint",
    "load_official_stunet",
    "load_swin_ssl_encoder",
    "register_model",
    "unpack_train_output",
]
