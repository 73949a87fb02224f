"""One daemon per data directory, enforced by an advisory lock the kernel releases on death.

``flock`` is held for the life of the process, so a crashed daemon never
leaves a lock that blocks its successor, and a second daemon is refused with
the pid of the one that holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AlreadyRunning(Exception):
    """Another process holds the data directory's lock."""


class DataDirLock:
    """An exclusive lock on ``<data_dir>/selfheal.lock``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "selfheal.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another selfheal (pid {holder}) is running on {self.path.parent}; "
                "stop it first, or give this one another --data-dir"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
