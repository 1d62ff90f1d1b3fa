"""Logging helpers: library code logs through ``logging``; only the CLI installs a handler."""
from __future__ import annotations

import logging


def get_logger(name: str) -> logging.Logger:
    """Return the logger for a medseg module (no handler is attached here)."""
    return logging.getLogger(name if name.startswith("medseg") else f"medseg.{name}")
