"""How medseg was installed, so a hint about a missing optional extra shows a command that works."""
from __future__ import annotations

import json
from functools import cache
from urllib.parse import unquote, urlparse


@cache
def _editable_source() -> str | None:
    """The folder of an editable install (``pip install -e``), else None (a wheel, or not installed)."""
    from importlib import metadata

    try:
        text = metadata.distribution("medseg").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        info = json.loads(text) if text else {}
    except ValueError:
        return None
    if not info.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(info.get("url", ""))
    return unquote(url.path) if url.scheme == "file" else None


def extra_hint(extra: str) -> str:
    """How to add an extra: ``pip install -e ".[cpu]"`` in the clone for an editable install,
    ``pip install "medseg[cpu]"`` otherwise."""
    source = _editable_source()
    if source:
        return f'the medseg[{extra}] extra: pip install -e ".[{extra}]" in {source}'
    return f'pip install "medseg[{extra}]"'
