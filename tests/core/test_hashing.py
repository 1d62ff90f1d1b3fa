"""File digests: streamed, and read once per run for files that do not change (fold checkpoints)."""
from __future__ import annotations

import hashlib
import os

from medseg.core import hashing


def test_a_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "fold_0.pth"
    path.write_bytes(b"weights" * 1000)
    reads = []
    real = hashing.sha256_file
    monkeypatch.setattr(hashing, "sha256_file", lambda p: reads.append(p) or real(p))
    first = hashing.sha256_file_once(path)
    assert hashing.sha256_file_once(path) == first == hashlib.sha256(b"weights" * 1000).hexdigest()
    assert len(reads) == 1                                        # the second call did not read the file
    path.write_bytes(b"tuned!!" * 1000)                           # same size, new content and modification time
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 1_000_000))
    assert hashing.sha256_file_once(path) == hashlib.sha256(b"tuned!!" * 1000).hexdigest() != first
