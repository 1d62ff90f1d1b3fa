"""On-disk cache of exported and compiled models, one folder per key.

An entry is a folder ``<cache_dir>/<key>/`` holding the backend's files and ``manifest.json`` (the key's
fields and each file's sha256). It is built in a temporary folder under a per-key file lock, then renamed
into place, so a concurrent run either waits and reuses it or never sees a half-written entry. An entry
whose files do not match the manifest (or that the backend cannot load) is moved aside and rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.core.log import get_logger

logger = get_logger(__name__)

FORMAT_VERSION = 1          # bump when the layout or the export recipe changes
MANIFEST = "manifest.json"
LOCK_TIMEOUT_S = 3600.0     # a concurrent export of a very large model may take minutes
STATS: Counter[str] = Counter()  # "builds", "hits", "corrupt": observable by tests and benchmarks

T = TypeVar("T")


class CorruptEntry(Exception):
    """A cache entry that is incomplete or does not match its manifest."""


@dataclass(frozen=True)
class CacheResult:
    """What :func:`get_or_build` returns: the loaded object and where it came from."""

    value: Any
    path: Path
    built: bool
    build_seconds: float | None


def default_cache_dir() -> Path:
    """``$MEDSEG_CACHE_DIR`` or ``~/.cache/medseg/compiled``."""
    env = os.environ.get("MEDSEG_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medseg" / "compiled"


def cache_key(fields: Mapping[str, Any]) -> str:
    """A stable hex key for the fields (JSON with sorted keys, sha256, 32 hex characters)."""
    text = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _stat(file: Path) -> list[int]:
    info = file.stat()
    return [info.st_size, info.st_mtime_ns]


def verify_entry(path: Path) -> dict[str, Any]:
    """Check every file listed in the manifest; return the manifest.

    A file whose size and modification time are still those recorded when the entry was built is taken as
    written (hashing a real-size network's compiled blob costs ~0.4 s on every run); any other file must
    match its sha256 (entries written before sizes were recorded are always hashed)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        stats = manifest.get("stat") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptEntry(f"unreadable manifest ({exc})") from exc
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise CorruptEntry(f"{name} is missing")
        if stats.get(name) == _stat(file):
            continue
        if sha256_file(file) != digest:
            raise CorruptEntry(f"{name} does not match its sha256")
    return manifest


def _write_manifest(path: Path, fields: Mapping[str, Any]) -> None:
    names = [p for p in sorted(path.iterdir()) if p.is_file()]
    files = {p.name: sha256_file(p) for p in names}
    text = json.dumps({"format": FORMAT_VERSION, "fields": dict(fields), "files": files,
                       "stat": {p.name: _stat(p) for p in names}}, indent=2, sort_keys=True, default=str)
    (path / MANIFEST).write_text(text, encoding="utf-8")


def _discard(path: Path) -> None:
    """Move an entry aside atomically, then delete it (readers holding its files are unaffected)."""
    trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=path.parent))
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, trash / path.name)
    shutil.rmtree(trash, ignore_errors=True)


def _try_load(path: Path, load: Callable[[Path], T]) -> T | None:
    """Load a verified entry; a corrupt or unloadable one is discarded and None returned."""
    if not path.is_dir():
        return None
    try:
        verify_entry(path)
        return load(path)
    except CorruptEntry as exc:
        reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a file the backend cannot read is a corrupt entry too
        reason = f"the backend cannot load it ({type(exc).__name__}: {str(exc)[:200]})"
    logger.warning("compiled-model cache entry %s is corrupt (%s); rebuilding it", path, reason)
    STATS["corrupt"] += 1
    _discard(path)
    return None


def get_or_build(
    cache_dir: str | PathLike,
    fields: Mapping[str, Any],
    build: Callable[[Path], None],
    load: Callable[[Path], T],
) -> CacheResult:
    """Load the entry for ``fields``, building it first when it is missing or corrupt.

    Args:
        cache_dir: the cache root.
        fields: everything the compiled files depend on (weights hash, window, backend, versions...).
        build: writes the entry's files into the folder it is given.
        load: turns a verified entry folder into a runnable object.
    """
    import time

    from filelock import FileLock, Timeout

    root = Path(cache_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MedsegError(f"cannot create the compiled-model cache ({exc.strerror})", path=root,
                          hint="set MEDSEG_CACHE_DIR or pass cache_dir= to a writable folder") from exc
    key = cache_key(fields)
    final = root / key
    value = _try_load(final, load)
    if value is not None:
        STATS["hits"] += 1
        return CacheResult(value, final, built=False, build_seconds=None)
    try:
        with FileLock(str(root / f"{key}.lock"), timeout=LOCK_TIMEOUT_S):
            value = _try_load(final, load)  # another process may have built it while we waited
            if value is not None:
                STATS["hits"] += 1
                return CacheResult(value, final, built=False, build_seconds=None)
            temp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
            try:
                start = time.perf_counter()
                build(temp)
                _write_manifest(temp, fields)
                seconds = time.perf_counter() - start
                os.replace(temp, final)
            except BaseException:
                shutil.rmtree(temp, ignore_errors=True)
                raise
    except Timeout as exc:
        raise MedsegError("timed out waiting for another process to build the compiled model",
                          path=root / f"{key}.lock", hint="delete the lock file if no other medseg is running") from exc
    STATS["builds"] += 1
    logger.info("built compiled model %s in %.1f s", final, seconds)
    return CacheResult(load(final), final, built=True, build_seconds=seconds)
