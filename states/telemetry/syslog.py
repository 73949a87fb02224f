"""Syslog lines, RFC 5424 and the older BSD format of RFC 3164.

Services run under systemd or forwarded through rsyslog end up in syslog
files. RFC 5424 lines carry a full timestamp, host, app, msgid and structured
data; RFC 3164 lines (``Nov  9 14:30:45 web-1 catalog[123]: msg``) carry no
year, so the year is the one that puts the line closest before "now" (from an
injected clock, so tests do not depend on the calendar). The app name becomes
the component, the host the instance and the priority's severity the level.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from states.telemetry import fields
from states.telemetry.fields import FieldError, Rejection
from states.telemetry.records import Record

Clock = Callable[[], datetime]

NIL: Final = "-"
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?"
)
_RFC3164 = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?"
    r"(?:(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})|(?P<iso>\d{4}-\d{2}-\d{2}T\S+)) "
    r"(?P<host>\S+) (?P<app>[^:\[\s]+)(?:\[(?P<pid>[^\]]*)\])?: ?(?P<msg>.*)"
)
_FUTURE_SLACK: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SyslogRules:
    """Fallbacks for what a syslog line may leave out."""

    component: str | None = None
    naive_zone: tzinfo = UTC


class SyslogParser:
    """Parses RFC 5424 lines, falling back to RFC 3164."""

    def __init__(self, rules: SyslogRules, max_bytes: int, clock: Clock) -> None:
        self._rules = rules
        self._max_bytes = max_bytes
        self._clock = clock

    @property
    def rules(self) -> SyslogRules:
        """The fallbacks this parser applies."""
        return self._rules

    @property
    def max_bytes(self) -> int:
        """Longer lines are rejected as too long."""
        return self._max_bytes

    def parse(self, raw: bytes) -> Record | Rejection:
        """One record, or the reason this line is not one."""
        text = fields.decode_line(raw, self._max_bytes)
        if isinstance(text, Rejection):
            return text
        try:
            match = _RFC5424.fullmatch(text)
            if match is not None:
                return self._rfc5424(match)
            match = _RFC3164.fullmatch(text)
            if match is not None:
                return self._rfc3164(match)
        except FieldError as error:
            return Rejection(error.reason, str(error))
        return Rejection(fields.NO_MATCH, "neither RFC 5424 nor RFC 3164 syslog")

    def _rfc5424(self, match: re.Match[str]) -> Record:
        if match.group("ts") == NIL:
            raise FieldError(fields.NO_TIMESTAMP, "RFC 5424 line has a nil timestamp")
        timestamp = fields.parse_timestamp(match.group("ts"), ("iso8601",), self._rules.naive_zone)
        msgid = match.group("msgid")
        return Record(
            timestamp=timestamp,
            component=self._component(match.group("app")),
            operation="" if msgid == NIL else msgid,
            level=severity_level(match.group("pri")),
            message=(match.group("msg") or "").removeprefix("\ufeff"),
            instance=_nil_to_none(match.group("host")),
        )

    def _rfc3164(self, match: re.Match[str]) -> Record:
        if match.group("iso"):
            zone = self._rules.naive_zone
            timestamp = fields.parse_timestamp(match.group("iso"), ("iso8601",), zone)
        else:
            timestamp = bsd_timestamp(match.group("bsd"), self._clock(), self._rules.naive_zone)
        return Record(
            timestamp=timestamp,
            component=self._component(match.group("app")),
            level=severity_level(match.group("pri")),
            message=match.group("msg"),
            instance=_nil_to_none(match.group("host")),
        )

    def _component(self, app: str) -> str:
        if app and app != NIL:
            return app
        if self._rules.component is None:
            raise FieldError(fields.NO_COMPONENT, "no app name and no default component")
        return self._rules.component


def severity_level(pri: str | None) -> str:
    """The level of a priority value (facility * 8 + severity); no PRI means info."""
    if pri is None:
        return "info"
    value = int(pri)
    if value > 191:
        raise FieldError(fields.BAD_FIELD, f"syslog priority {value} is above 191")
    return fields.SYSLOG_LEVELS[value % 8]


def bsd_timestamp(text: str, now: datetime, zone: tzinfo) -> datetime:
    """``Nov  9 14:30:45`` in the year that puts it closest before ``now``."""
    local_now = now.astimezone(zone)
    for year in (local_now.year, local_now.year - 1):
        try:
            moment = datetime.strptime(f"{year} {text}", "%Y %b %d %H:%M:%S")
        except ValueError:
            continue  # 29 Feb in a year without it: try the year before
        moment = moment.replace(tzinfo=zone)
        if moment <= local_now + _FUTURE_SLACK:
            return moment.astimezone(UTC)
    raise FieldError(fields.BAD_TIMESTAMP, f"syslog time {text!r} is not a date")


def _nil_to_none(value: str) -> str | None:
    return None if value == NIL else value
