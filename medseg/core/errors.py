"""One exception type for every user-facing failure.

A :class:`MedsegError` carries the file it is about and the fix, so the CLI can print one line and exit
with code 2 instead of a traceback from deep inside a library.
"""
from __future__ import annotations

from os import PathLike


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
        return text
