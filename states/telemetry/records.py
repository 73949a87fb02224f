"""The normalized telemetry record every source is parsed into.

Sources differ wildly (JSON lines, logfmt, access logs, syslog); detection and
diagnosis should not care, so every parser produces this one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

# Levels at which a record is a failure, whatever its status says.
ERROR_LEVELS: Final = frozenset({"error", "critical", "fatal"})


@dataclass(frozen=True, slots=True)
class StackFrame:
    """One frame of a stack trace, as written by the runtime that raised."""

    file: str
    line: int
    function: str


@dataclass(frozen=True, slots=True)
class Record:
    """One request or event of the watched service, normalized.

    ``timestamp`` is timezone-aware UTC. ``duration_ms`` is None for events that
    are not timed requests. ``status`` is an HTTP-like status code when known;
    ``level`` is lower-case (``debug``, ``info``, ``warning``, ``error``, ``critical``).
    """

    timestamp: datetime
    component: str
    operation: str = ""
    duration_ms: float | None = None
    status: int | None = None
    level: str = "info"
    message: str = ""
    version: str | None = None
    instance: str | None = None
    frames: tuple[StackFrame, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        """A request failed when the server says so (5xx) or the record is logged as an error."""
        if self.status is not None and self.status >= 500:
            return True
        return self.level in ERROR_LEVELS
