"""Lazy package attributes (PEP 562): a package lists ``name -> module`` and imports the module on first use,
so ``import medseg`` and the commands that need no network stay free of torch and MONAI."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``table[name]``'s attribute ``name``, imported when asked for."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
