"""Column types the tables share: UTC times and compact JSON.

SQLite keeps neither a time zone nor a JSON type, so these decide how a
value is written and read back: times as naive UTC (a naive datetime is
refused, never guessed), JSON as text through orjson for the large, hot
columns of windows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Column, DateTime, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlmodel import Field


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and hands back timezone-aware datetimes (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing to store a naive datetime {value!r}; use UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class CompactJSON(TypeDecorator[Any]):
    """JSON text written and read with orjson: for large, hot columns (a window's latencies,
    versions, templates and operations).

    Same storage as ``JSON`` (text in SQLite); about ten times faster to
    encode and decode than the standard library for lists of numbers.
    """

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: Any) -> str | None:
            return None if value is None else orjson.dumps(value).decode()

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        def process(value: Any) -> Any:
            return None if value is None else orjson.loads(value)

        return process


def json_column() -> Any:
    return Column(JSON, nullable=False)


def compact_json_column() -> Any:
    return Column(CompactJSON, nullable=False)


def at(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)
