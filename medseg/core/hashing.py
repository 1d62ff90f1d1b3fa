"""sha256 of files, streamed so multi-GB checkpoints never sit in memory."""
from __future__ import annotations

import hashlib
from os import PathLike


def sha256_file(path: str | PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
