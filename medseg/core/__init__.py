"""Bottom layer: errors, logging, hashing, atomic file writes and the model-card contract."""
from medseg.core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from medseg.core.errors import MedsegError
from medseg.core.hashing import sha256_file
from medseg.core.log import get_logger

__all__ = ["MedsegError", "atomic_path", "atomic_write_bytes", "atomic_write_text", "get_logger", "sha256_file"]
