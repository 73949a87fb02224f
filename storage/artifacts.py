"""Writing files that must never be seen half-written.

Artifacts and exports are written to a temporary file in the same directory,
fsynced, then renamed over the target, and the directory is fsynced too: a
crash leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically and return its SHA-256 hex digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return hashlib.sha256(data).hexdigest()


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete temporaries a crash left behind under ``directory``; returns what it removed."""
    removed = []
    if directory.exists():
        for tmp in directory.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
