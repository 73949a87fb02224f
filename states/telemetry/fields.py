"""Field values as services write them, coerced into the shape of a ``Record``.

Every log format spells the same facts differently: timestamps as ISO strings,
epoch numbers or access-log dates; durations as numbers in some unit or as
"230ms"; levels as "WRN", "warn" or a syslog severity. These pure functions
turn one raw value into the normalized one, or say why they could not, with a
short machine-readable reason that the caller counts per source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

# The reasons a line can be turned away, shared by every parser.
NOT_JSON: Final = "not_json"
NOT_OBJECT: Final = "not_object"
NO_MATCH: Final = "no_match"
NO_TIMESTAMP: Final = "no_timestamp"
BAD_TIMESTAMP: Final = "bad_timestamp"
NO_COMPONENT: Final = "no_component"
BAD_FIELD: Final = "bad_field"
BAD_DURATION: Final = "bad_duration"
BAD_STATUS: Final = "bad_status"
TOO_LONG: Final = "too_long"
INVALID_UTF8: Final = "invalid_utf8"
EMPTY: Final = "empty"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a line was not turned into a record: a fixed reason and a short detail."""

    reason: str
    detail: str = ""


class FieldError(ValueError):
    """A field value could not be coerced; ``reason`` is the rejection reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


LEVELS: Final[dict[str, str]] = {
    "trace": "debug",
    "verbose": "debug",
    "vrb": "debug",
    "debug": "debug",
    "dbg": "debug",
    "info": "info",
    "inf": "info",
    "information": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "wrn": "warning",
    "error": "error",
    "err": "error",
    "eror": "error",
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
    "ftl": "critical",
    "alert": "critical",
    "emerg": "critical",
    "panic": "critical",
}

# Syslog severities 0..7 (emergency .. debug).
SYSLOG_LEVELS: Final[tuple[str, ...]] = (
    "critical",
    "critical",
    "critical",
    "error",
    "warning",
    "info",
    "info",
    "debug",
)

UNIT_TO_MS: Final[dict[str, float]] = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
}

_DURATION_TEXT = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zµμ]*)\s*")
_EPOCH_MS_ABOVE: Final = 100_000_000_000  # 1973 in ms, year 5138 in s
_LONGEST_DURATION_MS: Final = 366 * 24 * 3_600_000.0


def normalize_level(value: object) -> str:
    """Lower-case canonical level; unknown words are kept lower-cased."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(SYSLOG_LEVELS):
        return SYSLOG_LEVELS[value]
    text = str(value).strip().lower()
    return LEVELS.get(text, text or "info")


def coerce_status(value: object) -> int:
    """An HTTP-like status code from an int or a numeric string."""
    status = _whole_number(value)
    if status is None:
        raise FieldError(BAD_STATUS, f"status is not a whole number: {value!r:.40}")
    if not 0 <= status <= 999:
        raise FieldError(BAD_STATUS, f"status {status} is outside 0..999")
    return status


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        try:
            return int(value)
        except ValueError:  # digits int() does not read ("²"), or thousands of them
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def coerce_duration_ms(value: object, unit_ms: float) -> float:
    """Milliseconds from a number in the configured unit or a string like "1.5s".

    A negative zero is zero: ``-0.0`` is a legal number in every format, and
    a stored window must not depend on which of two equal zeros came first.
    """
    if type(value) is float and 0.0 <= value <= _LONGEST_DURATION_MS / unit_ms:
        return value * unit_ms + 0.0
    if isinstance(value, bool):
        raise FieldError(BAD_DURATION, f"duration is a boolean: {value!r}")
    if isinstance(value, int | float):
        millis = float(value) * unit_ms
    elif isinstance(value, str):
        millis = duration_text_ms(value, unit_ms)
    else:
        raise FieldError(BAD_DURATION, f"duration has type {type(value).__name__}")
    if not math.isfinite(millis) or millis < 0 or millis > _LONGEST_DURATION_MS:
        raise FieldError(BAD_DURATION, f"duration {value!r:.40} is negative or out of range")
    return millis + 0.0


def duration_text_ms(text: str, unit_ms: float) -> float:
    """Parse "230ms", "1.5s", "450us" or a bare number (in the configured unit)."""
    match = _DURATION_TEXT.fullmatch(text)
    if match is None:
        raise FieldError(BAD_DURATION, f"duration {text!r:.40} is not a number with a unit")
    number, unit = match.groups()
    if not unit:
        return float(number) * unit_ms
    factor = UNIT_TO_MS.get(unit)
    if factor is None:
        raise FieldError(BAD_DURATION, f"duration unit {unit!r} is unknown")
    return float(number) * factor


def to_utc(moment: datetime, naive_zone: tzinfo) -> datetime:
    """Attach ``naive_zone`` to naive times and convert everything to UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_zone)
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:  # year 1 east of UTC, or year 9999 west of it
        detail = f"{moment.isoformat()} is outside years 1..9999 in UTC"
        raise FieldError(BAD_TIMESTAMP, detail) from error


def epoch_to_utc(value: float, unit: str) -> datetime:
    """Seconds or milliseconds since the epoch; ``auto`` picks by magnitude."""
    if unit == "epoch_ms" or (unit == "epoch" and abs(value) >= _EPOCH_MS_ABOVE):
        value = value / 1000.0
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise FieldError(BAD_TIMESTAMP, f"epoch {value!r} is out of range") from error


def parse_timestamp(value: object, formats: tuple[str, ...], naive_zone: tzinfo) -> datetime:
    """A UTC datetime from the first of ``formats`` that reads ``value``.

    Formats: ``iso8601``, ``epoch`` (seconds or ms by magnitude), ``epoch_s``,
    ``epoch_ms``, or a strptime pattern (anything containing ``%``).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError(BAD_TIMESTAMP, f"timestamp has type {type(value).__name__}")
    for fmt in formats:
        moment = _try_format(value, fmt, naive_zone)
        if moment is not None:
            return moment
    raise FieldError(BAD_TIMESTAMP, f"timestamp {value!r:.40} matches none of {list(formats)}")


def _try_format(value: str | float, fmt: str, naive_zone: tzinfo) -> datetime | None:
    if fmt.startswith("epoch"):
        number = _as_number(value)
        return None if number is None else epoch_to_utc(number, fmt)
    if not isinstance(value, str):
        return None
    try:
        if fmt == "iso8601":
            return to_utc(datetime.fromisoformat(value), naive_zone)
        return to_utc(datetime.strptime(value, fmt), naive_zone)
    except ValueError:
        return None


def _as_number(value: str | float) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return None


def zone_named(name: str) -> tzinfo:
    """``UTC``, a fixed offset like ``+02:00``, or an IANA zone name."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        minutes = int(offset.group(2)) * 60 + int(offset.group(3))
        return timezone(sign * timedelta(minutes=minutes))
    return ZoneInfo(name)


def decode_line(raw: bytes, max_bytes: int) -> str | Rejection:
    """The line as text without its line ending, or why it cannot be read."""
    if len(raw) > max_bytes:
        return Rejection(TOO_LONG, f"{len(raw)} bytes, limit {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection(INVALID_UTF8, f"invalid UTF-8 at byte {error.start}")
    text = text.rstrip("\r\n")
    if not text.strip():
        return Rejection(EMPTY, "blank line")
    return text
