"""Atomic file writes: write to a temp file in the destination folder, then rename.

A crash, Ctrl-C or a failed write never leaves a partial file under the final name, and readers see
either the old file or the complete new one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def _temp_name(final: Path) -> Path:
    """A unique temp name next to ``final`` that keeps its (possibly double) suffix, e.g. ``.nii.gz``."""
    suffix = "".join(final.suffixes[-2:]) if final.name.endswith((".nii.gz", ".tar.gz")) else final.suffix
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_name(final)
    try:
        yield temp
        if temp.is_file():  # mkstemp (and some writers) make 0600 files; outputs get the usual permissions
            os.chmod(temp, 0o666 & ~_UMASK)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def atomic_write_bytes(path: str | PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsynced before the rename)."""
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
