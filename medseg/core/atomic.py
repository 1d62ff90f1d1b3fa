"""Atomic file writes: write to a temp file in the destination folder, then rename.

A crash, Ctrl-C or a failed write never leaves a partial file under the final name, and readers see
either the old file or the complete new one. A full disk, a read-only file system or a missing
permission becomes one :class:`OutputError` naming the final path (exit code 2 in the CLI).

Temp names are hidden and carry the writer's pid and host, ``.NAME.PID-HOST.RANDOM.tmp.EXT``, so the
next run can tell a leftover of a killed writer (:func:`clean_stale_temps`) from a live one.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError

_UMASK = os.umask(0)
os.umask(_UMASK)
HOST = re.sub(r"[^A-Za-z0-9_-]+", "_", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[A-Za-z0-9_-]+)\.[^.]+\.tmp(\..*)?$")
UNOWNED_TEMP_AGE_S = 24 * 3600.0   # temp names without a pid (older medseg) are removed after a day
_OLD_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\..*)?$")   # mkstemp names of medseg before the pid tag

_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted", errno.ENOTDIR: "a parent of this path is a file, not a folder",
    errno.EEXIST: "a parent of this path is a file, not a folder", errno.EISDIR: "this path is a folder",
    errno.EFBIG: "file too large for the file system", errno.ENAMETOOLONG: "file name too long",
}


class OutputError(MedsegError):
    """An output cannot be written (full disk, read-only, no permission): the whole run stops."""


def output_error(exc: OSError, path: str | PathLike) -> OutputError | None:
    """The :class:`OutputError` for a write failure ``exc`` at ``path``, or None for other errors."""
    reason = _WRITE_ERRORS.get(exc.errno or -1)
    if reason is None:
        return None
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return OutputError(f"could not be written: {reason}", path=real_path(path),
                       hint=("free some space or " if full else "") + "choose another output location")


def real_path(path: str | PathLike) -> Path:
    """``path`` with our temp names (files and staging folders) mapped back to the names they become."""
    parts = []
    for part in Path(path).parts:
        match = _TEMP.match(part)
        parts.append(match["name"] if match else part)
    return Path(*parts)


def _tag() -> str:
    return f"{os.getpid()}-{HOST}"


def _temp_name(final: Path) -> Path:
    """A unique temp name next to ``final`` that keeps its (possibly double) suffix, e.g. ``.nii.gz``."""
    suffix = "".join(final.suffixes[-2:]) if final.name.endswith((".nii.gz", ".tar.gz")) else final.suffix
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{_tag()}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    return Path(name)


def temp_dir(final: str | PathLike) -> Path:
    """A hidden staging folder beside ``final`` (same naming as temp files, so stale ones are cleaned too)."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{final.name}.{_tag()}.", suffix=".tmp", dir=final.parent))
    except OSError as exc:
        raise (output_error(exc, final) or exc) from None


@contextlib.contextmanager
def atomic_path(path: str | PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left untouched; a full disk, a
    read-only file system or a permission error is raised as :class:`OutputError` naming ``path``.
    """
    final = Path(path)
    temp: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_name(final)
        yield temp
        if temp.is_file():  # mkstemp (and some writers) make 0600 files; outputs get the usual permissions
            os.chmod(temp, 0o666 & ~_UMASK)
        os.replace(temp, final)
    except BaseException as exc:
        full = isinstance(exc, Exception) and not isinstance(exc, (OSError, MedsegError)) and _disk_full(final.parent)
        if temp is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(temp) if temp.is_dir() and not temp.is_symlink() else temp.unlink()
        converted = output_error(exc, final) if isinstance(exc, OSError) else None
        if isinstance(exc, OutputError) and temp is not None and exc.path == str(temp):  # nested: name the real file
            converted = OutputError(exc.message, path=final, hint=exc.hint)
        if full:  # C++ writers (SimpleITK) report a full disk as a RuntimeError without errno
            converted = output_error(OSError(errno.ENOSPC, "no space"), final)
        if converted is not None:
            raise converted from None
        raise


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def atomic_write_bytes(path: str | PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsynced before the rename)."""
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_temp(path: Path, *, now: float | None = None) -> bool:
    """A temp file or staging folder of ours whose writer is gone (dead pid on this host, or very old)."""
    match = _TEMP.match(path.name)
    if match is None and not _OLD_TEMP.match(path.name):
        return False
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    if match is not None and match["host"] == HOST:
        return not pid_alive(int(match["pid"]))
    return age > UNOWNED_TEMP_AGE_S


def clean_stale_temps(folder: str | PathLike) -> list[Path]:
    """Remove hidden temp files/folders left in ``folder`` by a killed medseg writer; returns what went.

    Only names of our own pattern are touched, and only when their writer is provably gone: its pid is
    dead on this host, or (another host sharing the folder, or a name without a pid from an older medseg)
    the entry is over a day old.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if entry.name.startswith(".") and ".tmp" in entry.name and is_stale_temp(entry, now=now):
            with contextlib.suppress(OSError):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
    return removed


def check_writable(folder: str | PathLike, *, need_bytes: int = 0) -> None:
    """Fail early (:class:`OutputError`) when ``folder`` cannot be created or written, or clearly lacks
    ``need_bytes`` of free space. A one-byte probe file is written and removed."""
    folder = Path(folder)
    probe: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(folder / "medseg-write-check")
        with open(probe, "wb") as handle:
            handle.write(b"x")
            handle.flush()
            os.fsync(handle.fileno())
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise (output_error(exc, folder) or exc) from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.unlink()
    if need_bytes and free < need_bytes:
        raise OutputError(f"only {free / 2**20:.1f} MiB free, about {need_bytes / 2**20:.1f} MiB needed",
                          path=folder, hint="free some space or choose another output location")
