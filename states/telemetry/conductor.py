"""Conductor beat events: started/completed/failed lines paired into timed beats.

Services orchestrated as sequences of beats (selfheal's own phases among
them) log each beat's start and end separately. Paired by request id,
sequence and beat, they become records where the sequence is the component
and the beat is the operation, so a slow or failing beat is detected like a
slow or failing endpoint.

Accepted line shapes (one event per line):

JSON::

    {"event": "beat-started",   "request_id": "r-17", "sequence": "checkout",
     "beat": "reserve-stock", "ts": "2025-11-09T14:30:45.120Z"}
    {"event": "beat-completed", "request_id": "r-17", "sequence": "checkout",
     "beat": "reserve-stock", "ts": "2025-11-09T14:30:45.351Z", "execution_time_ms": 231}
    {"event": "beat-failed",    "request_id": "r-17", "sequence": "checkout",
     "beat": "charge-card", "ts": "...", "error": "card declined"}

Plain text: the timestamp, the event, then logfmt pairs::

    2025-11-09T14:30:45.12Z beat-started request_id=r-17 sequence=checkout beat=pay
    2025-11-09T14:30:45.35Z beat-completed request_id=r-17 sequence=checkout beat=pay
    2025-11-09T14:30:46Z beat-failed request_id=r-18 sequence=checkout beat=pay error="declined"

``ts`` is ISO 8601 (a zone-less time is read in the configured zone) or epoch
seconds/ms. ``execution_time_ms`` is optional on completions and failures;
without it the duration is the time since the matching start. Outcomes:

- ``beat-started`` yields nothing yet (``None``); the start is held.
- ``beat-completed`` yields a record; without a held start and without an
  execution time it is rejected as ``unpaired_completion``. Either way a
  completion without a start is counted in ``PairingCounts.unpaired_completions``.
- ``beat-failed`` yields an error-level record whose message is the error.
- Held starts older than ``max_age`` (measured in event time, not wall time,
  so replaying old files behaves the same) expire and are counted, as are the
  oldest starts once more than ``max_pending`` are held.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

import orjson

from states.telemetry import fields, logfmt
from states.telemetry.fields import FieldError, Rejection
from states.telemetry.records import Record

STARTED: Final = "beat-started"
COMPLETED: Final = "beat-completed"
FAILED: Final = "beat-failed"
EVENTS: Final = frozenset((STARTED, COMPLETED, FAILED))

UNKNOWN_EVENT: Final = "unknown_event"
MISSING_FIELD: Final = "missing_field"
UNPAIRED_COMPLETION: Final = "unpaired_completion"

BeatKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class BeatEvent:
    """One conductor event line, read but not yet paired."""

    event: str
    request_id: str
    sequence: str
    beat: str
    timestamp: datetime
    execution_time_ms: float | None = None
    error: str = ""

    @property
    def key(self) -> BeatKey:
        return (self.request_id, self.sequence, self.beat)


@dataclass(slots=True)
class PairingCounts:
    """What pairing saw: counted per source so operators can spot broken emitters."""

    paired: int = 0
    unpaired_completions: int = 0
    unpaired_failures: int = 0
    expired_starts: int = 0
    restarted: int = 0


def read_beat_event(text: str, naive_zone: tzinfo = UTC) -> BeatEvent:
    """One event from a JSON or plain-text line; raises ``FieldError`` with the reason."""
    json_like = text.lstrip()[:1] in ("{", "[")
    values = _json_values(text) if json_like else _text_values(text)
    event = values.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise FieldError(UNKNOWN_EVENT, f"event {event!r:.40} is not one of {sorted(EVENTS)}")
    names = ("request_id", "sequence", "beat")
    missing = [name for name in (*names, "ts") if values.get(name) in (None, "")]
    if missing:
        raise FieldError(MISSING_FIELD, f"{event} line lacks {missing}")
    if not all(isinstance(values[name], str | int) for name in names):
        raise FieldError(fields.BAD_FIELD, "request_id, sequence and beat must be strings")
    elapsed = values.get("execution_time_ms")
    return BeatEvent(
        event=str(event),
        request_id=str(values["request_id"]),
        sequence=str(values["sequence"]),
        beat=str(values["beat"]),
        timestamp=fields.parse_timestamp(values["ts"], ("iso8601", "epoch"), naive_zone),
        execution_time_ms=None if elapsed is None else fields.coerce_duration_ms(elapsed, 1.0),
        error="" if values.get("error") is None else str(values["error"]),
    )


def _json_values(text: str) -> dict[str, object]:
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise FieldError(fields.NOT_JSON, f"{error.msg} at column {error.colno}") from error
    if type(values) is not dict:
        raise FieldError(fields.NOT_OBJECT, f"top-level JSON {type(values).__name__}")
    return values


def _text_values(text: str) -> dict[str, object]:
    parts = text.split(maxsplit=2)
    if len(parts) < 2:
        raise FieldError(fields.NO_MATCH, "expected '<ts> <event> key=value ...'")
    pairs = logfmt.split_pairs(parts[2] if len(parts) == 3 else "")
    if pairs is None:
        raise FieldError(logfmt.BAD_LOGFMT, "event fields are not key=value pairs")
    return {**pairs, "ts": parts[0], "event": parts[1]}


@dataclass(slots=True)
class BeatPairing:
    """Holds started beats until their completion or failure arrives."""

    max_age: timedelta = timedelta(hours=1)
    max_pending: int = 100_000
    counts: PairingCounts = field(default_factory=PairingCounts)
    _pending: OrderedDict[BeatKey, datetime] = field(default_factory=OrderedDict)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def observe(self, event: BeatEvent) -> Record | Rejection | None:
        """Hold a start, or turn an end into a record of the beat."""
        self._expire(event.timestamp)
        if event.event == STARTED:
            self._hold(event)
            return None
        started = self._pending.pop(event.key, None)
        if started is not None:
            self.counts.paired += 1
        elif event.event == COMPLETED:
            self.counts.unpaired_completions += 1
        else:
            self.counts.unpaired_failures += 1
        duration = beat_duration_ms(event, started)
        if event.event == COMPLETED and duration is None:
            return Rejection(UNPAIRED_COMPLETION, f"no start held for {event.key}")
        return beat_record(event, duration)

    def _hold(self, event: BeatEvent) -> None:
        if event.key in self._pending:
            self.counts.restarted += 1
            del self._pending[event.key]
        self._pending[event.key] = event.timestamp
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.counts.expired_starts += 1

    def _expire(self, now: datetime) -> None:
        try:
            horizon = now - self.max_age
        except OverflowError:  # an event dated within max_age of year 1 expires nothing
            return
        while self._pending:
            key, started = next(iter(self._pending.items()))
            if started >= horizon:
                return
            del self._pending[key]
            self.counts.expired_starts += 1


def beat_duration_ms(event: BeatEvent, started: datetime | None) -> float | None:
    """The reported execution time, else the time since the start, else unknown."""
    if event.execution_time_ms is not None:
        return event.execution_time_ms
    if started is None:
        return None
    return max((event.timestamp - started).total_seconds() * 1000.0, 0.0)


def beat_record(event: BeatEvent, duration_ms: float | None) -> Record:
    """The record of one finished beat: sequence as component, beat as operation."""
    failed = event.event == FAILED
    return Record(
        timestamp=event.timestamp,
        component=event.sequence,
        operation=event.beat,
        duration_ms=duration_ms,
        level="error" if failed else "info",
        message=event.error if failed else "",
    )


class ConductorParser:
    """Reads conductor event lines and pairs them; ``None`` means "held, nothing yet"."""

    def __init__(self, pairing: BeatPairing, max_bytes: int, naive_zone: tzinfo = UTC) -> None:
        self.pairing = pairing
        self._max_bytes = max_bytes
        self._zone = naive_zone

    def parse(self, raw: bytes) -> Record | Rejection | None:
        """A record for a finished beat, None for a held start, or a rejection."""
        text = fields.decode_line(raw, self._max_bytes)
        if isinstance(text, Rejection):
            return text
        try:
            event = read_beat_event(text, self._zone)
        except FieldError as error:
            return Rejection(error.reason, str(error))
        return self.pairing.observe(event)
