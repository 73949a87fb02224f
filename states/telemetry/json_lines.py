"""JSON lines: one object per line, fields found by configurable dotted paths.

This is the format selfheal recommends and the hot path of ingestion, so the
parser does the least per line: orjson decodes, a precompiled
``RecordBuilder`` picks the fields, and the slower diagnosis of *why* a line
is not JSON (invalid UTF-8, blank, truncated) only runs on failure.
"""

from __future__ import annotations

import orjson

from states.telemetry import fields
from states.telemetry.fields import Rejection
from states.telemetry.mapping import RecordBuilder
from states.telemetry.records import Record


class JsonLinesParser:
    """Parses one JSON object per line into a record."""

    def __init__(self, builder: RecordBuilder, max_bytes: int) -> None:
        self._builder = builder
        self._max_bytes = max_bytes

    @property
    def builder(self) -> RecordBuilder:
        """The field mapping this parser applies to each decoded object."""
        return self._builder

    @property
    def max_bytes(self) -> int:
        """Longer lines are rejected as too long."""
        return self._max_bytes

    def parse(self, raw: bytes) -> Record | Rejection:
        """One record, or the reason this line is not one."""
        if len(raw) > self._max_bytes:
            return Rejection(fields.TOO_LONG, f"{len(raw)} bytes, limit {self._max_bytes}")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return json_failure(raw, error)
        if type(value) is not dict:
            return Rejection(fields.NOT_OBJECT, f"top-level JSON {type(value).__name__}")
        return self._builder.build(value)


def json_failure(raw: bytes, error: orjson.JSONDecodeError) -> Rejection:
    """Name the reason a line did not decode: encoding, blank, or not JSON."""
    decoded = fields.decode_line(raw, len(raw))
    if isinstance(decoded, Rejection):
        return decoded
    return Rejection(fields.NOT_JSON, f"{error.msg} at column {error.colno}")
