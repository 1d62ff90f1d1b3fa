"""The run-time accuracy guard's verdict, remembered with the compiled model it judged.

:class:`medseg.inference.runtime.GuardedRuntime` checks a compiled runtime against PyTorch fp32 on the first
windows of a run. That check costs one PyTorch window per network per run, which on a scan of one or two
windows is as much as the compiled runtime saves (``bench_nnunet`` case i; TotalSegmentator's 3 mm part).
The verdict depends on what keys the compiled cache entry (the network's weights and architecture, the
window, the runtime and its version, the precision, this CPU), so it is written into that entry
(``guard.json``, beside the compiled files; not part of the entry's manifest) and read by the next run:

- **passed** (on windows where PyTorch found foreground): later runs skip the check, except every
  :data:`RECHECK_EVERY`-th run, which checks again; a failure there turns the verdict into a refusal;
- **refused**: later runs do not even load the compiled runtime (PyTorch fp32 from the start), until the
  file is deleted or the entry is rebuilt (a new runtime version or weights make a new entry).

Runs that find no foreground in their checked windows record nothing. A verdict written under another
guard threshold is ignored.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from medseg.backends.guard import GUARD_DICE
from medseg.core.log import get_logger

logger = get_logger(__name__)

VERDICT_FILE = "guard.json"
RECHECK_EVERY = 10   # a remembered pass is checked again on every 10th run that uses it


@dataclass(frozen=True)
class Verdict:
    """One entry's guard verdict: passed or refused, the guard Dice it was decided on, when, and how many
    runs have trusted it since (``runs_since``)."""

    passed: bool
    min_dice: float
    checked_at: str
    runs_since: int = 0
    threshold: float = GUARD_DICE

    @property
    def due(self) -> bool:
        """True when this run must check again (every :data:`RECHECK_EVERY`-th run after a pass)."""
        return self.passed and self.runs_since + 1 >= RECHECK_EVERY

    def describe(self) -> str:
        state = "passed" if self.passed else "refused"
        return f"guard {state} on an earlier run ({self.checked_at}, guard Dice {self.min_dice:.4f})"


def read(entry: Path | None) -> Verdict | None:
    """The verdict stored in a compiled cache entry, or None (no entry, no verdict, unreadable, or written
    under another threshold)."""
    if entry is None:
        return None
    try:
        data = json.loads((Path(entry) / VERDICT_FILE).read_text(encoding="utf-8"))
        verdict = Verdict(passed=bool(data["passed"]), min_dice=float(data["min_dice"]),
                          checked_at=str(data["checked_at"]), runs_since=int(data.get("runs_since", 0)),
                          threshold=float(data.get("threshold", GUARD_DICE)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring an unreadable guard verdict in %s (%s)", entry, exc)
        return None
    return verdict if verdict.threshold == GUARD_DICE else None


def _write(entry: Path, verdict: Verdict) -> None:
    from medseg.core.atomic import atomic_write_text

    try:   # the cache may be read-only (a shared install): the guard then simply runs every time
        atomic_write_text(Path(entry) / VERDICT_FILE, json.dumps(asdict(verdict), indent=2, sort_keys=True))
    except OSError as exc:
        logger.info("cannot remember the guard verdict in %s (%s)", entry, exc)


def record(entry: Path | None, *, passed: bool, min_dice: float) -> Verdict | None:
    """Write a fresh verdict into ``entry`` (nothing without an entry)."""
    if entry is None:
        return None
    verdict = Verdict(passed=passed, min_dice=float(min_dice), checked_at=time.strftime("%Y-%m-%d %H:%M"))
    _write(Path(entry), verdict)
    return verdict


def count_run(entry: Path | None, verdict: Verdict) -> Verdict:
    """One more run trusted ``verdict`` without checking; returns the updated verdict."""
    updated = replace(verdict, runs_since=verdict.runs_since + 1)
    if entry is not None:
        _write(Path(entry), updated)
    return updated
