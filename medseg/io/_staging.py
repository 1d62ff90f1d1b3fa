"""Atomic writes of outputs made of several files (a DICOM series folder, a .mhd/.nhdr header + data file).

Everything is first written under its final name into a hidden staging folder next to the destination,
then moved into place with ``os.replace`` (same file system, so each move is atomic): data files first and
the header last, or the whole folder in one rename. A failure removes the staging folder, so no partial
output is left under a final name.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staging_folder(final: Path) -> Iterator[Path]:
    """Yield an empty hidden folder in ``final``'s parent; it is removed afterwards, whatever happens."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish_files(staged: Path, destination: Path, last: str) -> None:
    """Move every file of ``staged`` into ``destination``, the one named ``last`` (the header) at the end."""
    names = sorted(p.name for p in staged.iterdir() if p.name != last)
    for name in [*names, last]:
        os.replace(staged / name, destination / name)


def publish_folder(staged: Path, final: Path) -> None:
    """Rename the staged folder to ``final`` (which must be absent or an empty folder)."""
    if final.is_dir():
        final.rmdir()
    os.replace(staged, final)
