"""Serilog-style console lines: ``[2025-11-09 14:30:45.123 -05:00] [INF] Source: message``.

.NET services using Serilog's console or file sink write this shape (output
template ``[{Timestamp:yyyy-MM-dd HH:mm:ss.fff zzz}] [{Level:u3}] {SourceContext}:
{Message}``). The source context names the component. Serilog's request
logging middleware writes "HTTP GET /x responded 200 in 12.3456 ms", which is
read into operation, status and duration (component from the path, as for
access logs) so .NET request logs count as timed requests like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final

from states.telemetry import fields, regex_formats
from states.telemetry.fields import FieldError, Rejection
from states.telemetry.records import Record

_LINE = re.compile(
    r"\[(?P<ts>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)"
    r"(?: ?(?P<zone>Z|[+-]\d{2}:?\d{2}))?\] "
    r"\[(?P<level>[A-Za-z]{3,11})\] "
    r"(?:(?P<source>[A-Za-z_][\w.`+<>-]*): )?(?P<message>.*)"
)
_REQUEST = re.compile(
    r"HTTP (?P<method>[A-Z]+) (?P<path>\S+) responded (?P<status>\d{3}) "
    r"in (?P<elapsed>\d+(?:\.\d+)?) ms"
)
_FRACTION_DIGITS: Final = 6


@dataclass(frozen=True, slots=True)
class SerilogRules:
    """Fallbacks for lines without a source context or zone."""

    component: str | None = None
    naive_zone: tzinfo = UTC


class SerilogParser:
    """Parses one Serilog console line into a record."""

    def __init__(self, rules: SerilogRules, max_bytes: int) -> None:
        self._rules = rules
        self._max_bytes = max_bytes

    def parse(self, raw: bytes) -> Record | Rejection:
        """One record, or the reason this line is not one."""
        text = fields.decode_line(raw, self._max_bytes)
        if isinstance(text, Rejection):
            return text
        match = _LINE.fullmatch(text)
        if match is None:
            return Rejection(fields.NO_MATCH, "not a [timestamp] [LVL] Source: message line")
        try:
            return self._record(match)
        except FieldError as error:
            return Rejection(error.reason, str(error))

    def _record(self, match: re.Match[str]) -> Record:
        message = match.group("message")
        request = _REQUEST.match(message)
        component = match.group("source") or self._rules.component
        if request is not None:
            path = regex_formats.request_path(request.group("path"))
            component = regex_formats.request_component(path) or component
        if component is None:
            raise FieldError(fields.NO_COMPONENT, "no source context and no default component")
        return Record(
            timestamp=serilog_timestamp(match.group("ts"), match.group("zone"), self._rules),
            component=component,
            operation=request_operation(request),
            duration_ms=fields.coerce_duration_ms(float(request.group("elapsed")), 1.0)
            if request
            else None,
            status=int(request.group("status")) if request else None,
            level=fields.normalize_level(match.group("level")),
            message=message,
        )


def request_operation(request: re.Match[str] | None) -> str:
    """``GET /catalog/items/{id}`` for a request-log line, empty otherwise."""
    if request is None:
        return ""
    path = regex_formats.operation_path(regex_formats.request_path(request.group("path")))
    return f"{request.group('method')} {path}"


def serilog_timestamp(local: str, zone: str | None, rules: SerilogRules) -> datetime:
    """Local time plus optional offset as UTC; .NET may print 7 fraction digits."""
    head, dot, fraction = local.replace(",", ".").partition(".")
    text = head + (dot + fraction[:_FRACTION_DIGITS] if dot else "") + (zone or "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise FieldError(fields.BAD_TIMESTAMP, f"timestamp {local!r}: {error}") from error
    return fields.to_utc(moment, rules.naive_zone)
