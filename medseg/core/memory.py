"""How much memory this process may still allocate, so big jobs can be refused before they allocate.

The smallest of: the system's available memory (psutil when installed, else ``/proc/meminfo``), the
container's cgroup limit, and the process address-space limit (``ulimit -v``) minus what is mapped
already. None of these is exact; they are meant to turn "MemoryError after minutes" into a clear refusal.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

_FALLBACK = 8 << 30  # nothing readable (non-Linux without psutil): assume a modest machine


def available_memory() -> int:
    """Bytes this process can reasonably still allocate (see the module docstring)."""
    limits = [_system_available(), _cgroup_headroom(), _address_space_headroom()]
    known = [v for v in limits if v is not None]
    return max(0, min(known)) if known else _FALLBACK


def format_bytes(n: float) -> str:
    """``1.5 GB``-style text (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def _system_available() -> int | None:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    return _meminfo("MemAvailable")


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return int(limit) - used
    except (OSError, ValueError):
        return None


def _address_space_headroom() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    mapped = 0
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return soft - mapped
