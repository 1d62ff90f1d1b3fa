"""How ``--help`` shows parameter types: flags as bare flags (``--json``, not ``--json <bool>``) and
repeated arguments as ``<path>...`` (typer's own rendering shows ``<bool>`` and ``<list[Path]>``)."""
from __future__ import annotations

from typing import Any


def show_flags_as_flags() -> None:
    """Patch typer's rich help once: no type for boolean flags, ``<elem>...`` for list arguments."""
    from typer import core

    if getattr(core.TyperOption, "_medseg_help", False) or not hasattr(core.TyperOption, "display_type_rich"):
        return  # already done, or a typer release that renders types another way (nothing to correct)
    option_type = core.TyperOption.display_type_rich

    def option_display(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) or getattr(self, "is_bool_flag", False):
            return None
        text = option_type(self, ctx)
        if getattr(self, "multiple", False) and isinstance(text, str) and text.startswith("<list["):
            return f"<{_element(text)}>"  # repeatable: the help text says so
        return text

    core.TyperOption.display_type_rich = option_display
    core.TyperOption._medseg_help = True
    argument_type = getattr(core.TyperArgument, "display_type_rich", None)
    if argument_type is None:
        return

    def argument_display(self: Any, ctx: Any) -> str | None:
        text = argument_type(self, ctx)
        if isinstance(text, str) and text.startswith("<list["):
            return f"<{_element(text)}>..."
        return text

    core.TyperArgument.display_type_rich = argument_display


def _element(text: str) -> str:
    """``<list[Path]>`` -> ``path``; ``<list[str]>`` -> ``str``."""
    element = text[len("<list["):].rstrip("]>")
    return element.lower()
