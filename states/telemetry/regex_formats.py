"""Line formats read with regular expressions: user patterns and access-log presets.

Anything without a structure of its own is read with a pattern whose named
groups are the record's fields (``timestamp``, ``component``, ``duration`` ...).
nginx and Apache access logs are common enough to ship as presets: the
combined format followed by the request time (nginx ``$request_time`` in
seconds, Apache ``%D`` in microseconds). Their component comes from the first
segment of the request path, and their operation is the method plus the path
with ids collapsed, so ``/catalog/items/42`` and ``/catalog/items/43`` count as
one operation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Final

from states.telemetry import fields
from states.telemetry.fields import FieldError, Rejection
from states.telemetry.mapping import RecordBuilder
from states.telemetry.records import Record

ACCESS_LOG_PATTERN: Final = (
    r'(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "'
    r'(?:(?P<method>[A-Z]+) (?P<target>[^ "]*)(?: HTTP/[\d.]+)?|[^"]*)" '
    r'(?P<status>\d{3}) (?:\d+|-)(?: "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*")?'
    r"(?: (?P<elapsed>\d+(?:\.\d+)?|-))?(?:\s.*)?"
)
ROOT_COMPONENT: Final = "root"

_CLF_TIME = re.compile(
    r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
)
_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|(?=[a-fA-F]*\d)[0-9a-fA-F]{12,}"
)


class RegexParser:
    """Matches a pattern and maps its named groups to a record."""

    def __init__(self, pattern: re.Pattern[str], builder: RecordBuilder, max_bytes: int) -> None:
        self._pattern = pattern
        self._builder = builder
        self._max_bytes = max_bytes

    def parse(self, raw: bytes) -> Record | Rejection:
        """One record, or the reason this line is not one."""
        text = fields.decode_line(raw, self._max_bytes)
        if isinstance(text, Rejection):
            return text
        match = self._pattern.fullmatch(text)
        if match is None:
            return Rejection(fields.NO_MATCH, "line does not match the configured pattern")
        return self._builder.build(match.groupdict())


@dataclass(frozen=True, slots=True)
class AccessLogRules:
    """How an access-log preset reads its request time and names components."""

    elapsed_unit_ms: float
    component: str | None = None
    component_from_path: bool = True


class AccessLogParser:
    """nginx or Apache combined access logs with the request time appended."""

    def __init__(self, rules: AccessLogRules, max_bytes: int) -> None:
        self._rules = rules
        self._pattern = re.compile(ACCESS_LOG_PATTERN)
        self._max_bytes = max_bytes

    def parse(self, raw: bytes) -> Record | Rejection:
        """One record, or the reason this line is not one."""
        text = fields.decode_line(raw, self._max_bytes)
        if isinstance(text, Rejection):
            return text
        match = self._pattern.fullmatch(text)
        if match is None:
            return Rejection(fields.NO_MATCH, "not a combined access log line")
        try:
            return self._record(match)
        except FieldError as error:
            return Rejection(error.reason, str(error))

    def _record(self, match: re.Match[str]) -> Record:
        rules = self._rules
        method, target = match.group("method") or "", match.group("target") or ""
        path = request_path(target)
        component = request_component(path) if rules.component_from_path else None
        component = component or rules.component or ROOT_COMPONENT
        elapsed = match.group("elapsed")
        status = fields.coerce_status(match.group("status"))
        return Record(
            timestamp=parse_clf_time(match.group("time")),
            component=component,
            operation=f"{method} {operation_path(path)}".strip(),
            duration_ms=None
            if elapsed in (None, "-")
            else fields.coerce_duration_ms(float(elapsed), rules.elapsed_unit_ms),
            status=status,
            level=status_level(status),
            message=f"{method} {target}".strip(),
        )


def parse_clf_time(text: str) -> datetime:
    """``09/Nov/2025:14:30:45 +0100`` (common log format) as UTC."""
    match = _CLF_TIME.fullmatch(text)
    month = _MONTHS.get(match.group(2), 0) if match else 0
    if match is None or not month:
        raise FieldError(fields.BAD_TIMESTAMP, f"access-log time {text!r:.40} is malformed")
    day, _, year, hour, minute, second, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(
            int(year),
            month,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=_offset(sign, int(off_h) * 60 + int(off_m)),
        )
    except ValueError as error:
        raise FieldError(fields.BAD_TIMESTAMP, f"access-log time {text!r:.40}: {error}") from error
    return moment.astimezone(UTC)


@lru_cache(maxsize=64)
def _offset(sign: str, minutes: int) -> timezone:
    return timezone(timedelta(minutes=-minutes if sign == "-" else minutes))


def request_path(target: str) -> str:
    """The path of a request target, without query string or fragment."""
    return target.split("?", 1)[0].split("#", 1)[0]


def request_component(path: str) -> str | None:
    """The first path segment (``/catalog/items/1`` -> ``catalog``), if any."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first and not _ID_SEGMENT.fullmatch(first) else None


def operation_path(path: str) -> str:
    """The path with id-like segments replaced by ``{id}``."""
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(part) else part for part in path.split("/"))


def status_level(status: int) -> str:
    """Access logs carry no level; the status implies one."""
    if status >= 500:
        return "error"
    if status >= 400:
        return "warning"
    return "info"
