"""The model zoo: every network is created, described and given weights the same way.

Adding a model is one file in this folder that decorates its builder with ``@register_model(card)``;
this package imports every sibling module, so no list needs editing.
"""
import importlib
import pkgutil

from medseg.models._registry import create_model, get_card, get_entry, list_models, register_model

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if not _info.name.startswith("_") and _info.name not in ("weights",):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["create_model", "get_card", "get_entry", "list_models", "register_model"]
