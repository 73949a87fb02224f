"""Conductor beat events: starts and ends pair into timed beats per sequence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from states.telemetry.conductor import BeatPairing, ConductorParser
from states.telemetry.fields import Rejection
from states.telemetry.records import Record

T0 = datetime(2025, 11, 9, 14, 30, 45, tzinfo=UTC)


def event(
    kind: str, at: timedelta, request: str = "r-1", beat: str = "reserve", **extra: object
) -> bytes:
    return orjson.dumps(
        {
            "event": kind,
            "request_id": request,
            "sequence": "checkout",
            "beat": beat,
            "ts": (T0 + at).isoformat(),
            **extra,
        }
    )


def raw_event(**changes: object) -> bytes:
    values: dict[str, object] = {
        "event": "beat-started",
        "request_id": "r",
        "sequence": "s",
        "beat": "b",
        "ts": "2025-11-09T14:30:45Z",
    }
    values.update(changes)
    return orjson.dumps({k: v for k, v in values.items() if v is not None})


def parser(max_age: timedelta = timedelta(hours=1), max_pending: int = 1000) -> ConductorParser:
    return ConductorParser(BeatPairing(max_age=max_age, max_pending=max_pending), max_bytes=4096)


class TestPairing:
    def test_a_start_is_held_and_its_completion_becomes_a_timed_beat(self) -> None:
        conductor = parser()
        assert conductor.parse(event("beat-started", timedelta(0))) is None
        done = conductor.parse(event("beat-completed", timedelta(milliseconds=231)))
        assert done == Record(
            timestamp=T0 + timedelta(milliseconds=231),
            component="checkout",
            operation="reserve",
            duration_ms=pytest.approx(231.0),  # type: ignore[arg-type]
            level="info",
        )
        assert conductor.pairing.counts.paired == 1
        assert conductor.pairing.pending == 0

    def test_a_reported_execution_time_wins_over_the_timestamps(self) -> None:
        conductor = parser()
        conductor.parse(event("beat-started", timedelta(0)))
        done = conductor.parse(event("beat-completed", timedelta(seconds=2), execution_time_ms=40))
        assert isinstance(done, Record)
        assert done.duration_ms == 40.0

    def test_interleaved_requests_pair_by_request_and_beat(self) -> None:
        conductor = parser()
        conductor.parse(event("beat-started", timedelta(0), request="a"))
        conductor.parse(event("beat-started", timedelta(milliseconds=5), request="b"))
        conductor.parse(event("beat-started", timedelta(milliseconds=6), request="b", beat="pay"))
        late = conductor.parse(event("beat-completed", timedelta(milliseconds=100), request="a"))
        early = conductor.parse(event("beat-completed", timedelta(milliseconds=25), request="b"))
        assert isinstance(late, Record) and isinstance(early, Record)
        assert late.duration_ms == pytest.approx(100.0)
        assert early.duration_ms == pytest.approx(20.0)
        assert conductor.pairing.pending == 1

    def test_a_failure_is_an_error_record_carrying_the_error(self) -> None:
        conductor = parser()
        conductor.parse(event("beat-started", timedelta(0), beat="pay"))
        failed = conductor.parse(
            event("beat-failed", timedelta(seconds=1), beat="pay", error="card declined")
        )
        assert isinstance(failed, Record)
        assert (failed.operation, failed.level, failed.message, failed.is_error) == (
            "pay",
            "error",
            "card declined",
            True,
        )
        assert failed.duration_ms == pytest.approx(1000.0)

    def test_plain_text_lines_pair_like_json_lines(self) -> None:
        conductor = parser()
        started = b"2025-11-09T14:30:45Z beat-started request_id=r-9 sequence=detect beat=load"
        done = b"2025-11-09T14:30:45.5Z beat-completed request_id=r-9 sequence=detect beat=load"
        assert conductor.parse(started) is None
        record = conductor.parse(done)
        assert isinstance(record, Record)
        assert (record.component, record.operation, record.duration_ms) == ("detect", "load", 500.0)


class TestUnpairedEvents:
    def test_a_completion_without_start_or_execution_time_is_rejected_and_counted(self) -> None:
        conductor = parser()
        result = conductor.parse(event("beat-completed", timedelta(0)))
        assert isinstance(result, Rejection) and result.reason == "unpaired_completion"
        assert conductor.pairing.counts.unpaired_completions == 1

    def test_a_completion_with_execution_time_but_no_start_is_kept_and_counted(self) -> None:
        conductor = parser()
        result = conductor.parse(event("beat-completed", timedelta(0), execution_time_ms=12.5))
        assert isinstance(result, Record) and result.duration_ms == 12.5
        assert conductor.pairing.counts.unpaired_completions == 1

    def test_a_failure_without_start_is_kept_without_duration(self) -> None:
        conductor = parser()
        result = conductor.parse(event("beat-failed", timedelta(0), error="boom"))
        assert isinstance(result, Record) and result.duration_ms is None and result.is_error
        assert conductor.pairing.counts.unpaired_failures == 1

    def test_stale_starts_expire_after_the_bound_in_event_time(self) -> None:
        conductor = parser(max_age=timedelta(minutes=5))
        conductor.parse(event("beat-started", timedelta(0), request="old"))
        conductor.parse(event("beat-started", timedelta(minutes=10), request="new"))
        assert conductor.pairing.counts.expired_starts == 1
        late = conductor.parse(
            event("beat-completed", timedelta(minutes=10, seconds=1), request="old")
        )
        assert isinstance(late, Rejection) and late.reason == "unpaired_completion"

    def test_the_oldest_starts_are_dropped_beyond_the_pending_limit(self) -> None:
        conductor = parser(max_pending=2)
        for index in range(5):
            conductor.parse(event("beat-started", timedelta(seconds=index), request=f"r{index}"))
        assert conductor.pairing.pending == 2
        assert conductor.pairing.counts.expired_starts == 3

    def test_a_repeated_start_restarts_the_clock(self) -> None:
        conductor = parser()
        conductor.parse(event("beat-started", timedelta(0)))
        conductor.parse(event("beat-started", timedelta(seconds=3)))
        done = conductor.parse(event("beat-completed", timedelta(seconds=4)))
        assert isinstance(done, Record) and done.duration_ms == pytest.approx(1000.0)
        assert conductor.pairing.counts.restarted == 1


class TestMalformedEvents:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b'{"event": "beat-started"', "not_json"),
            (b"[1]", "not_object"),
            (raw_event(event="beat-paused"), "unknown_event"),
            (raw_event(request_id=None), "missing_field"),
            (raw_event(ts=None), "missing_field"),
            (raw_event(request_id={"x": 1}), "bad_field"),
            (raw_event(ts="soon"), "bad_timestamp"),
            (raw_event(event="beat-completed", execution_time_ms="slow"), "bad_duration"),
            (b"2025-11-09T14:30:45Z", "no_match"),
            (b'2025-11-09T14:30:45Z beat-started request_id="r', "bad_logfmt"),
            (b"\xfe\xff", "invalid_utf8"),
            (b"", "empty"),
        ],
    )
    def test_malformed_lines_name_their_reason(self, raw: bytes, expected: str) -> None:
        result = parser().parse(raw)
        assert isinstance(result, Rejection)
        assert result.reason == expected

    def test_lines_above_the_limit_are_rejected(self) -> None:
        result = ConductorParser(BeatPairing(), max_bytes=64).parse(
            event("beat-started", timedelta(0))
        )
        assert isinstance(result, Rejection) and result.reason == "too_long"
