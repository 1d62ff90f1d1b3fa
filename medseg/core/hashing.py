"""sha256 of files, streamed so multi-GB checkpoints never sit in memory."""
from __future__ import annotations

import hashlib
import os
from os import PathLike

_KNOWN: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file_once(path: str | PathLike) -> str:
    """:func:`sha256_file`, computed once per process while the file keeps its size and modification time: a
    run that pins a checkpoint, records it in the sidecar and names its compiled network by it reads it once."""
    info = os.stat(path)
    key = (os.path.realpath(path), info.st_size, info.st_mtime_ns)
    if key not in _KNOWN:
        _KNOWN[key] = sha256_file(path)
    return _KNOWN[key]
