"""Every log format: good lines become normalized records, bad lines a named rejection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from states.telemetry.fields import Rejection
from states.telemetry.formats import FormatSpec, MultilineParser, make_parser
from states.telemetry.records import Record, StackFrame


def parse(spec: FormatSpec, raw: bytes) -> Record | Rejection | None:
    return make_parser(spec, clock=lambda: datetime(2025, 1, 2, 12, tzinfo=UTC)).parse(raw)


def record(spec: FormatSpec, raw: bytes) -> Record:
    result = parse(spec, raw)
    assert isinstance(result, Record), result
    return result


def reason(spec: FormatSpec, raw: bytes) -> str:
    result = parse(spec, raw)
    assert isinstance(result, Rejection), result
    return result.reason


def json_line(**values: object) -> bytes:
    return orjson.dumps(values)


JSON = FormatSpec()
FULL = {
    "ts": "2025-11-09T14:30:45.123Z",
    "component": "catalog",
    "operation": "GET /x",
    "duration_ms": 12.3,
    "status": 200,
    "level": "info",
    "message": "served",
    "version": "abc123",
    "instance": "web-1",
}


class TestJsonLinesDefaultShape:
    def test_the_documented_shape_parses_without_configuration(self) -> None:
        got = record(JSON, json_line(**FULL))
        assert got == Record(
            timestamp=datetime(2025, 11, 9, 14, 30, 45, 123000, tzinfo=UTC),
            component="catalog",
            operation="GET /x",
            duration_ms=12.3,
            status=200,
            level="info",
            message="served",
            version="abc123",
            instance="web-1",
        )

    @pytest.mark.parametrize("key", ["timestamp", "time"])
    def test_timestamp_may_be_named_timestamp_or_time(self, key: str) -> None:
        values = {k: v for k, v in FULL.items() if k != "ts"} | {key: "2025-11-09T14:30:45Z"}
        assert record(JSON, orjson.dumps(values)).timestamp == datetime(
            2025, 11, 9, 14, 30, 45, tzinfo=UTC
        )

    def test_a_python_stack_field_becomes_frames(self) -> None:
        stack = (
            "Traceback (most recent call last):\n"
            '  File "/app/catalog/views.py", line 41, in list_items\n'
            "    rows = query()\n"
            '  File "/app/catalog/db.py", line 7, in query\n'
            "    raise TimeoutError\n"
            "TimeoutError"
        )
        got = record(JSON, json_line(**FULL, stack=stack))
        assert got.frames == (
            StackFrame("/app/catalog/views.py", 41, "list_items"),
            StackFrame("/app/catalog/db.py", 7, "query"),
        )

    def test_a_trailing_newline_is_accepted(self) -> None:
        assert record(JSON, json_line(**FULL) + b"\n").component == "catalog"

    def test_levels_are_normalized_to_lower_case_names(self) -> None:
        assert record(JSON, json_line(**FULL | {"level": "WARN"})).level == "warning"
        assert record(JSON, json_line(**FULL | {"level": "Fatal"})).level == "critical"

    def test_optional_fields_may_be_absent(self) -> None:
        got = record(JSON, json_line(ts=FULL["ts"], component="cart"))
        assert (got.duration_ms, got.status, got.version, got.instance) == (None, None, None, None)


class TestJsonLinesMapping:
    def test_dotted_paths_reach_into_nested_objects(self) -> None:
        spec = FormatSpec(
            fields={"timestamp": ["@t"], "component": ["svc.name"], "duration": ["http.took"]},
            duration_unit="s",
        )
        got = record(
            spec, json_line(**{"@t": 1731162645, "svc": {"name": "cart"}, "http": {"took": 0.25}})
        )
        assert (got.component, got.duration_ms) == ("cart", 250.0)
        assert got.timestamp == datetime(2024, 11, 9, 14, 30, 45, tzinfo=UTC)

    def test_a_default_component_fills_in_for_lines_without_one(self) -> None:
        spec = FormatSpec(component="monolith")
        assert record(spec, json_line(ts=FULL["ts"])).component == "monolith"

    def test_unknown_target_fields_are_refused_at_configuration(self) -> None:
        with pytest.raises(ValidationError, match="unknown target"):
            FormatSpec(fields={"latency": ["x"]})


class TestTimestamps:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2025-11-09T14:30:45-05:00", datetime(2025, 11, 9, 19, 30, 45, tzinfo=UTC)),
            ("2025-11-09T14:30:45.5+01:00", datetime(2025, 11, 9, 13, 30, 45, 500000, tzinfo=UTC)),
            ("2025-11-09 14:30:45", datetime(2025, 11, 9, 14, 30, 45, tzinfo=UTC)),
            (1762698645, datetime(2025, 11, 9, 14, 30, 45, tzinfo=UTC)),
            (1762698645250, datetime(2025, 11, 9, 14, 30, 45, 250000, tzinfo=UTC)),
            (1762698645.5, datetime(2025, 11, 9, 14, 30, 45, 500000, tzinfo=UTC)),
        ],
    )
    def test_zoned_naive_and_epoch_times_normalize_to_utc(
        self, value: object, expected: datetime
    ) -> None:
        got = record(JSON, json_line(ts=value, component="c")).timestamp
        assert got == expected
        assert got.tzinfo is not None
        assert got.utcoffset() == timedelta(0)

    def test_naive_times_are_read_in_the_configured_zone(self) -> None:
        spec = FormatSpec(timezone="Europe/Berlin")
        got = record(spec, json_line(ts="2025-07-01T12:00:00", component="c"))
        assert got.timestamp == datetime(2025, 7, 1, 10, 0, tzinfo=UTC)

    def test_strptime_patterns_are_tried_in_order(self) -> None:
        spec = FormatSpec(timestamp_formats=["%d/%m/%Y %H:%M:%S %z", "iso8601"])
        got = record(spec, json_line(ts="09/11/2025 14:30:45 +0200", component="c"))
        assert got.timestamp == datetime(2025, 11, 9, 12, 30, 45, tzinfo=UTC)

    def test_an_unknown_zone_is_refused_at_configuration(self) -> None:
        with pytest.raises(ValidationError, match="unknown timezone"):
            FormatSpec(timezone="Mars/Olympus")


class TestDurations:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("230ms", 230.0),
            ("1.5s", 1500.0),
            ("450us", 0.45),
            ("450µs", 0.45),
            ("2m", 120000.0),
            (17, 17.0),
            ("17", 17.0),
        ],
    )
    def test_numbers_and_unit_strings_become_milliseconds(
        self, value: object, expected: float
    ) -> None:
        got = record(JSON, json_line(ts=FULL["ts"], component="c", duration_ms=value))
        assert got.duration_ms == pytest.approx(expected)

    @pytest.mark.parametrize(("unit", "expected"), [("s", 2000.0), ("us", 0.002), ("ns", 2e-6)])
    def test_bare_numbers_use_the_configured_unit(self, unit: str, expected: float) -> None:
        spec = FormatSpec(fields={"duration": ["took"]}, duration_unit=unit)
        got = record(spec, json_line(ts=FULL["ts"], component="c", took=2))
        assert got.duration_ms == pytest.approx(expected)

    @pytest.mark.parametrize("value", ["fast", "12 parsecs", -5, True, [1], "nan"])
    def test_unreadable_durations_are_rejected_as_bad_duration(self, value: object) -> None:
        assert (
            reason(JSON, json_line(ts=FULL["ts"], component="c", duration_ms=value))
            == "bad_duration"
        )


class TestJsonLinesRejections:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b'{"ts": "2025-11-09T14:30:45Z", "component": "c"', "not_json"),
            (b"\x00\x01\x02\x7f binary", "not_json"),
            (b"\x89PNG\r\n\x1a\n\x00\x00", "invalid_utf8"),
            (b"\xff\xfe{}", "invalid_utf8"),
            (b'{"ts": "\xc3\x28", "component": "c"}', "invalid_utf8"),
            (b"", "empty"),
            (b"   \n", "empty"),
            (b"[1, 2]", "not_object"),
            (b'"just a string"', "not_object"),
            (b'{"component": "c"}', "no_timestamp"),
            (b'{"ts": "yesterday", "component": "c"}', "bad_timestamp"),
            (b'{"ts": {"s": 1}, "component": "c"}', "bad_timestamp"),
            (b'{"ts": 1e300, "component": "c"}', "bad_timestamp"),
            (b'{"ts": "2025-11-09T14:30:45Z"}', "no_component"),
            (b'{"ts": "2025-11-09T14:30:45Z", "component": ["a"]}', "bad_field"),
            (b'{"ts": "2025-11-09T14:30:45Z", "component": "c", "status": "ok"}', "bad_status"),
            (b'{"ts": "2025-11-09T14:30:45Z", "component": "c", "status": 12345}', "bad_status"),
            (b'{"ts": "2025-11-09T14:30:45Z", "component": "c", "status": true}', "bad_status"),
            (b'{"ts": "2025-11-09T14:30:45Z", "component": "c", "stack": 5}', "bad_field"),
        ],
    )
    def test_malformed_lines_name_their_reason(self, raw: bytes, expected: str) -> None:
        assert reason(JSON, raw) == expected

    def test_lines_above_the_limit_are_rejected_before_decoding(self) -> None:
        spec = FormatSpec(max_line_bytes=1024)
        huge = json_line(ts=FULL["ts"], component="c", message="x" * 2000)
        assert reason(spec, huge) == "too_long"
        assert (
            reason(FormatSpec(kind="logfmt", max_line_bytes=1024), b"a=" + b"x" * 2000)
            == "too_long"
        )


class TestLogfmt:
    SPEC = FormatSpec(kind="logfmt")

    def test_pairs_with_quotes_escapes_and_units_become_a_record(self) -> None:
        raw = (
            b'ts=2025-11-09T14:30:45+02:00 level=warn component=cart operation="POST /cart" '
            b'duration=1.5s status=503 msg="stock \\"low\\"" instance=web-2 debug'
        )
        got = record(self.SPEC, raw)
        assert got == Record(
            timestamp=datetime(2025, 11, 9, 12, 30, 45, tzinfo=UTC),
            component="cart",
            operation="POST /cart",
            duration_ms=1500.0,
            status=503,
            level="warning",
            message='stock "low"',
            instance="web-2",
        )

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b'ts=2025-11-09T14:30:45Z component=c msg="unterminated', "bad_logfmt"),
            (b"\xc0\xaf", "invalid_utf8"),
            (b"component=c level=info", "no_timestamp"),
            (b"ts=2025-11-09T14:30:45Z component=c duration=soon", "bad_duration"),
            (b'"quoted-key"=1', "bad_logfmt"),
        ],
    )
    def test_malformed_lines_name_their_reason(self, raw: bytes, expected: str) -> None:
        assert reason(self.SPEC, raw) == expected


class TestRegex:
    SPEC = FormatSpec(
        kind="regex",
        pattern=(
            r"(?P<timestamp>\S+) (?P<level>[A-Z]+) \[(?P<component>\w+)\] "
            r"(?P<message>.*?)(?: took=(?P<duration>\S+))?"
        ),
    )

    def test_named_groups_fill_the_record(self) -> None:
        got = record(self.SPEC, b"2025-11-09T14:30:45Z ERROR [billing] charge failed took=450us")
        assert (got.component, got.level, got.message) == ("billing", "error", "charge failed")
        assert got.duration_ms == pytest.approx(0.45)

    def test_optional_groups_that_did_not_match_stay_empty(self) -> None:
        assert record(self.SPEC, b"2025-11-09T14:30:45Z INFO [billing] ok").duration_ms is None

    def test_a_line_that_does_not_match_is_rejected(self) -> None:
        assert reason(self.SPEC, b"something else entirely") == "no_match"

    def test_a_pattern_without_a_timestamp_group_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="timestamp"):
            FormatSpec(kind="regex", pattern=r"(?P<message>.*)")

    def test_a_pattern_that_does_not_compile_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="does not compile"):
            FormatSpec(kind="regex", pattern=r"(?P<timestamp>\S+")


NGINX_LINE = (
    b'203.0.113.9 - alice [09/Nov/2025:14:30:45 +0100] "GET /catalog/items/42?page=2 HTTP/1.1" '
    b'200 5120 "https://shop.example/" "Mozilla/5.0 (X11)" 0.231'
)


class TestAccessLogs:
    def test_nginx_combined_with_request_time_in_seconds(self) -> None:
        got = record(FormatSpec(kind="nginx"), NGINX_LINE)
        assert got == Record(
            timestamp=datetime(2025, 11, 9, 13, 30, 45, tzinfo=UTC),
            component="catalog",
            operation="GET /catalog/items/{id}",
            duration_ms=pytest.approx(231.0),  # type: ignore[arg-type]
            status=200,
            level="info",
            message="GET /catalog/items/42?page=2",
        )

    def test_apache_combined_with_microseconds_and_server_errors(self) -> None:
        raw = (
            b'10.0.0.1 - - [09/Nov/2025:14:30:45 -0500] "POST /cart/checkout HTTP/1.1" '
            b'502 0 "-" "curl/8.4" 23000'
        )
        got = record(FormatSpec(kind="apache"), raw)
        assert (got.component, got.duration_ms, got.status, got.level, got.is_error) == (
            "cart",
            23.0,
            502,
            "error",
            True,
        )
        assert got.timestamp == datetime(2025, 11, 9, 19, 30, 45, tzinfo=UTC)

    def test_the_component_can_be_configured_instead_of_taken_from_the_path(self) -> None:
        spec = FormatSpec(kind="nginx", component="storefront", component_from_path=False)
        assert record(spec, NGINX_LINE).component == "storefront"

    def test_the_root_path_falls_back_to_the_configured_component(self) -> None:
        raw = b'1.2.3.4 - - [09/Nov/2025:14:30:45 +0000] "GET / HTTP/1.1" 200 1 "-" "-" 0.001'
        assert record(FormatSpec(kind="nginx", component="web"), raw).component == "web"

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b"GET /catalog 200", "no_match"),
            (NGINX_LINE.replace(b"Nov", b"Foo"), "bad_timestamp"),
            (NGINX_LINE.replace(b"09/Nov", b"31/Nov"), "bad_timestamp"),
            (NGINX_LINE[:60], "no_match"),
        ],
    )
    def test_malformed_lines_name_their_reason(self, raw: bytes, expected: str) -> None:
        assert reason(FormatSpec(kind="nginx"), raw) == expected


class TestSyslog:
    SPEC = FormatSpec(kind="syslog")

    def test_rfc5424_with_structured_data_and_bom(self) -> None:
        raw = (
            b"<165>1 2003-10-11T22:14:15.003-07:00 mymachine.example.com evntslog - ID47 "
            b'[exampleSDID@32473 iut="3" eventSource="Application"] '
            b"\xef\xbb\xbfAn application event"
        )
        got = record(self.SPEC, raw)
        assert got == Record(
            timestamp=datetime(2003, 10, 12, 5, 14, 15, 3000, tzinfo=UTC),
            component="evntslog",
            operation="ID47",
            level="info",
            message="An application event",
            instance="mymachine.example.com",
        )

    def test_rfc3164_takes_the_year_that_is_not_in_the_future(self) -> None:
        got = record(self.SPEC, b"<11>Dec 31 23:59:01 web-1 catalog[812]: worker crashed")
        assert got.timestamp == datetime(2024, 12, 31, 23, 59, 1, tzinfo=UTC)
        assert (got.component, got.level, got.instance, got.message) == (
            "catalog",
            "error",
            "web-1",
            "worker crashed",
        )

    def test_rfc3164_without_priority_from_a_file_is_info(self) -> None:
        got = record(self.SPEC, b"Jan  2 09:15:00 web-1 cart: started")
        assert (got.timestamp, got.level) == (datetime(2025, 1, 2, 9, 15, tzinfo=UTC), "info")

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b"<999>1 2003-10-11T22:14:15Z host app - - - msg", "bad_field"),
            (b"<34>1 - host app - - - msg", "no_timestamp"),
            (b"<34>1 yesterday host app - - - msg", "bad_timestamp"),
            (b"hello world", "no_match"),
            (b"<34>Oct 11 22:14:15", "no_match"),
        ],
    )
    def test_malformed_lines_name_their_reason(self, raw: bytes, expected: str) -> None:
        assert reason(self.SPEC, raw) == expected


class TestSerilog:
    SPEC = FormatSpec(kind="serilog")

    def test_console_lines_carry_source_level_and_zoned_time(self) -> None:
        got = record(
            self.SPEC, b"[2025-11-09 14:30:45.123 -05:00] [WRN] Shop.Catalog.Search: slow index"
        )
        assert got == Record(
            timestamp=datetime(2025, 11, 9, 19, 30, 45, 123000, tzinfo=UTC),
            component="Shop.Catalog.Search",
            level="warning",
            message="slow index",
        )

    def test_request_logging_lines_become_timed_requests(self) -> None:
        raw = (
            b"[2025-11-09 14:30:45.1234567 +00:00] [INF] "
            b"Serilog.AspNetCore.RequestLoggingMiddleware: "
            b"HTTP GET /catalog/items/7 responded 500 in 812.4051 ms"
        )
        got = record(self.SPEC, raw)
        assert (got.component, got.operation, got.status, got.duration_ms, got.is_error) == (
            "catalog",
            "GET /catalog/items/{id}",
            500,
            812.4051,
            True,
        )

    def test_lines_without_a_source_need_a_default_component(self) -> None:
        raw = b"[2025-11-09 14:30:45.123 +00:00] [ERR] boom"
        assert reason(self.SPEC, raw) == "no_component"
        assert record(FormatSpec(kind="serilog", component="api"), raw).component == "api"

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b"[2025-13-09 14:30:45.123 +00:00] [INF] A: b", "bad_timestamp"),
            (b"2025-11-09 14:30:45 INF A: b", "no_match"),
            (b"[2025-11-09 14:30:45.123 +00:00] [INF" + b"\xff", "invalid_utf8"),
        ],
    )
    def test_malformed_lines_name_their_reason(self, raw: bytes, expected: str) -> None:
        assert reason(self.SPEC, raw) == expected


class TestMultilineParser:
    def test_a_java_trace_under_a_serilog_line_becomes_its_frames(self) -> None:
        parser = MultilineParser(make_parser(FormatSpec(kind="serilog")))
        lines = [
            b"[2025-11-09 14:30:45.123 +00:00] [ERR] Shop.Orders: order failed",
            b"java.lang.IllegalStateException: no stock",
            b"\tat com.shop.Orders.place(Orders.java:88)",
            b"\tat com.shop.Api.handle(Api.java:12)",
            b"[2025-11-09 14:30:46.000 +00:00] [INF] Shop.Orders: next",
        ]
        results = [result for line in lines for result in parser.feed(line)]
        results += parser.flush()
        assert [type(r) for r in results] == [Record, Record]
        first = results[0]
        assert isinstance(first, Record)
        assert first.frames == (
            StackFrame("Orders.java", 88, "com.shop.Orders.place"),
            StackFrame("Api.java", 12, "com.shop.Api.handle"),
        )

    def test_rejections_pass_through_and_held_starts_are_not_returned(self) -> None:
        parser = MultilineParser(make_parser(FormatSpec(kind="conductor")))
        started = json_line(
            event="beat-started", request_id="r", sequence="s", beat="b", ts=FULL["ts"]
        )
        results = parser.feed(started) + parser.feed(b"{broken") + parser.flush()
        assert [r.reason for r in results if isinstance(r, Rejection)] == ["not_json"]
        assert len(results) == 1
