"""Claim a piece of work with a lock file, so several processes (or machines sharing a folder) split it.

A claim is a hidden file ``.NAME.lock`` beside the output, created with ``O_CREAT | O_EXCL`` (atomic on
local file systems and NFSv3+) and holding the owner's pid, host and start time as JSON. A claim whose
owner is gone is recovered: the pid is dead on this host, or the claim is older than ``stale_after``
seconds (owners on other hosts cannot be asked). Breaking a stale claim is itself guarded by an
exclusive ``.NAME.lock.break`` file, so two processes never both take over one stale claim.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from os import PathLike
from pathlib import Path
from typing import Self

from medseg.core.atomic import HOST, pid_alive
from medseg.core.log import get_logger

logger = get_logger(__name__)
STALE_AFTER_S = float(os.environ.get("MEDSEG_CLAIM_TIMEOUT", "21600"))  # 6 hours
_BREAK_STALE_S = 60.0


def lock_path(output: str | PathLike) -> Path:
    """The claim file of ``output``: ``.NAME.lock`` in the same folder."""
    p = Path(output)
    return p.with_name(f".{p.name}.lock")


def _create(path: Path, owner: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(owner, handle)
    return True


def read_owner(path: str | PathLike) -> dict | None:
    """The owner recorded in a claim file (``{}`` if unreadable, None if there is no claim)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _is_stale(path: Path, owner: dict, stale_after: float) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if owner.get("host") == HOST and isinstance(owner.get("pid"), int):
        return not pid_alive(owner["pid"]) or age > stale_after
    return age > stale_after


class Claim:
    """A held claim; :meth:`release` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path, owner: dict) -> None:
        self.path, self.owner = path, owner

    def release(self) -> None:
        if read_owner(self.path) == self.owner:  # never remove a claim someone else took over
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(output: str | PathLike, *, stale_after: float = STALE_AFTER_S) -> Claim | None:
    """Claim ``output`` for this process; None when a live owner holds it."""
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = {"pid": os.getpid(), "host": HOST, "time": time.time(), "nonce": os.urandom(6).hex()}
    for _ in range(3):
        if _create(path, owner):
            return Claim(path, owner)
        held = read_owner(path)
        if held is None:      # released between our two calls: try again
            continue
        if not _is_stale(path, held, stale_after) or not _break(path, held):
            return None
        logger.info("%s: recovered a stale claim of pid %s on %s", path, held.get("pid"), held.get("host"))
    return None


def _break(path: Path, held: dict) -> bool:
    """Remove the stale claim ``held`` at ``path``, unless another process is doing the same."""
    guard = path.with_name(path.name + ".break")
    if not _create(guard, {"pid": os.getpid(), "host": HOST}):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - guard.stat().st_mtime > _BREAK_STALE_S:  # a breaker killed mid-way
                guard.unlink()
        return False
    try:
        if read_owner(path) == held:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            guard.unlink()
