"""Configuring structlog, once, in the composition root.

The daemon logs one JSON object per line (for journald and log shippers);
interactive commands log human-readable lines. Cycle, phase and beat are bound
through contextvars by the progression, so every line says where it came from.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from typing import Any

import structlog


def _json_value(value: object) -> object:
    """Times as ISO 8601 (a log shipper parses them); anything else as its repr."""
    return value.isoformat() if isinstance(value, date) else repr(value)


def configure(*, json: bool, level: str = "info") -> None:
    """Set up the processor pipeline and where lines go (stderr)."""
    renderer: Any = (
        structlog.processors.JSONRenderer(default=_json_value)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
