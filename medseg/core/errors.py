"""One exception type for every user-facing failure.

A :class:`MedsegError` carries the file it is about and the fix, so the CLI can print one line and exit
with code 2 instead of a traceback from deep inside a library.
"""
from __future__ import annotations

import re
from os import PathLike

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\s*[\n\t]+\s*")
# torch's advice to load untrusted pickles (turning weights_only off, allowlisting globals) is never passed on
_UNSAFE_ADVICE = re.compile(r"weights_only|safe_globals|can still be loaded|trust the source|trusted source|"
                            r"two options|arbitrary code", re.IGNORECASE)


def scrub_message(text: str) -> str:
    """``text`` without terminal colour codes, and without any sentence advising to load a checkpoint
    unsafely (torch's "re-run with weights_only set to False" text; such text is joined into one line)."""
    text = _ANSI.sub("", text)
    if not _UNSAFE_ADVICE.search(text):
        return text
    kept = [s for s in _SENTENCE.split(text) if s.strip() and not _UNSAFE_ADVICE.search(s)]
    kept = [re.sub(r"^\(\d\)\s*|^WeightsUnpickler error:\s*", "", s) for s in kept]
    return " ".join(" ".join(kept).split())


class MedsegError(Exception):
    """A failure the user can fix: bad input, missing weights, wrong options.

    Args:
        message: what went wrong, in one sentence.
        path: the file or folder concerned, if any.
        hint: what to do about it.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | PathLike | None = None, hint: str | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text += f" ({self.hint})"
        return scrub_message(text)
