"""One rule for every command that writes: never write onto one of its own inputs.

An output *collides* with an input when both name the same file (after resolving symlinks, or as hard
links of one inode), or when one lies inside the other and the outer one is a unit that is read or
replaced as a whole (a DICOM series folder given as input, a per-class output folder). The check runs
before anything is computed or written, and fails with one :class:`MedsegError` (exit code 2).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

from medseg.core.errors import MedsegError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".model", ".safetensors", ".bin", ".tar")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare it as written
        return Path(os.path.abspath(path))


def same_file(a: str | PathLike, b: str | PathLike) -> bool:
    """``a`` and ``b`` are one file or folder: equal after resolving symlinks, or hard links of one inode."""
    a, b = Path(a), Path(b)
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _inside(inner: Path, outer: Path) -> bool:
    return outer != inner and outer in inner.parents


def find_collision(outputs: Iterable[str | PathLike], inputs: Iterable[str | PathLike]) -> tuple[Path, Path] | None:
    """The first ``(output, input)`` pair that collides (see the module docstring), or None.

    Args:
        outputs: every path the command would write; a folder here means it is replaced as a whole.
        inputs: every path the command reads; a folder here means it is read as a whole (a DICOM series).

    Lookups are by set, so thousands of cases cost milliseconds.
    """
    same: dict[Path, Path] = {}        # resolved input -> as given
    units: dict[Path, Path] = {}       # resolved input folders read whole
    holders: dict[Path, Path] = {}     # every ancestor of an input -> that input
    by_inode: dict[tuple[int, int], Path] = {}
    for raw in map(Path, inputs):
        resolved = _resolved(raw)
        same.setdefault(resolved, raw)
        if raw.is_dir():
            units.setdefault(resolved, raw)
        for parent in resolved.parents:
            holders.setdefault(parent, raw)
        try:
            st = raw.stat()
        except OSError:
            continue
        by_inode.setdefault((st.st_dev, st.st_ino), raw)
    for out in map(Path, outputs):
        out_r = _resolved(out)
        hit = same.get(out_r) or holders.get(out_r) or next(
            (units[p] for p in out_r.parents if p in units), None)
        if hit is not None:
            return out, hit
        try:
            st = out.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in by_inode:
            return out, by_inode[(st.st_dev, st.st_ino)]
    return None


def refuse_writing_inputs(outputs: Iterable[str | PathLike], inputs: Iterable[str | PathLike], *,
                          option: str = "-o") -> None:
    """Raise :class:`MedsegError` when an output would overwrite (or replace a folder holding) an input."""
    found = find_collision(outputs, inputs)
    if found is not None:
        out, inp = found
        what = "is" if same_file(out, inp) else "would replace a folder holding" if _inside(
            _resolved(inp), _resolved(out)) else "would write inside"
        raise MedsegError(f"this output {what} the input {inp}; medseg never writes onto its inputs", path=out,
                          hint=f"choose another {option}")


def files_in(folder: str | PathLike) -> list[Path]:
    """The non-hidden files directly inside ``folder`` (an input folder's members, for the rule above)."""
    p = Path(folder)
    if not p.is_dir():
        return [p]
    return [c for c in sorted(p.iterdir()) if not c.name.startswith(".") and c.is_file()]


def check_output_file(path: str | PathLike, *, option: str) -> None:
    """An output file path must not be a folder, nor lie under an existing file."""
    p = Path(path)
    if p.is_dir():
        raise MedsegError(f"{option} names a folder, a file is expected", path=p, hint=f"give {option} a file name")
    _check_parents(p, option)


def check_output_folder(path: str | PathLike, *, option: str) -> None:
    """An output folder path must not be an existing file, nor lie under one."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise MedsegError(f"{option} names an existing file, a folder is expected", path=p,
                          hint=f"give {option} a folder (it is created if missing)")
    _check_parents(p, option)


def _check_parents(p: Path, option: str) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MedsegError(f"{option} lies under {parent}, which is a file", path=p,
                                  hint=f"give {option} a path in a folder")
            return


def looks_like_file(text: str) -> bool:
    """Whether a ``--from``-style argument names a file (a path or a checkpoint suffix) rather than NAME.TAG."""
    return os.sep in text or "/" in text or text.lower().endswith(CHECKPOINT_SUFFIXES)


def weights_import_dir(weights_dir: str | PathLike | None = None) -> Path:
    """Where ``medseg models import`` copies files: ``weights_dir``, ``$MEDSEG_WEIGHTS_DIR`` or the cache
    (here, not in :mod:`medseg.models`, so light commands can find it without importing torch)."""
    if weights_dir:
        return Path(weights_dir)
    if os.environ.get("MEDSEG_WEIGHTS_DIR"):
        return Path(os.environ["MEDSEG_WEIGHTS_DIR"])
    return Path.home() / ".cache" / "medseg" / "weights"
