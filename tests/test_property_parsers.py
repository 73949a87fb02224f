"""Hostile log lines, config files and sequence files: every input is a result or a clear error.

Telemetry is written by the service being healed, which is misbehaving by
definition; config and sequence files are written by people at a terminal.
None of them may crash the agent or make it lose count. These properties feed
random and mutated inputs to the real parsers, to ``poll_sources`` over real
files and a real SQLite database, and to the config and sequence loaders.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import tempfile
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from agent.settings import ConfigError, load_settings
from sequences.loading import SequenceError, bundled_folder, load_sequences
from states.settings import Settings
from states.telemetry import regex_formats, serilog, syslog
from states.telemetry.fields import Rejection
from states.telemetry.formats import FormatKind, FormatSpec, MultilineParser, make_parser
from states.telemetry.ingest import poll_sources
from states.telemetry.records import Record
from states.telemetry.stacktraces import is_continuation
from storage import window_store
from storage.db import open_database
from tests.support.log_samples import FORMAT_KINDS, GOOD_JSON, GOOD_LINES, REGEX_PATTERN

NOW = datetime(2026, 11, 24, 7, 31, tzinfo=UTC)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSER_LINE_LIMIT = 512

# --- hostile values -------------------------------------------------------------------------

SPECIAL_TEXT = [
    "",
    " ",
    "\x00",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "-1",
    "-5ms",
    "1e400",
    "1e-400",
    "12parsecs",
    "²",
    "١٢٣",
    "9" * 5000,
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59.999999+14:00",
    "2026-02-30T00:00:00Z",
    "; touch /tmp/selfheal-pwned",
    "$(touch /tmp/selfheal-pwned)",
    "--upload-pack=touch pwned",
]
ODD_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=59))]
)
FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)
ANY_TIME = st.datetimes(FIRST, LAST) | st.datetimes(FIRST, LAST, timezones=ODD_ZONES)
HOSTILE_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(SPECIAL_TEXT))
HOSTILE_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    HOSTILE_TEXT,
    ANY_TIME.map(datetime.isoformat),
)
HOSTILE_VALUE = st.recursive(
    HOSTILE_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
HOSTILE_BYTES = [
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\r",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\t",
    b'"',
]


def spec_of(kind: FormatKind) -> FormatSpec:
    pattern = REGEX_PATTERN if kind == "regex" else None
    return FormatSpec(kind=kind, pattern=pattern, max_line_bytes=PARSER_LINE_LIMIT)


def one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def logfmt_value(value: object) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return one_line(json.dumps(value))


@st.composite
def json_records(draw: st.DrawFn) -> dict[str, object]:
    """The documented record shape with any fields replaced by hostile values."""
    record = dict(GOOD_JSON)
    record.update(
        draw(st.dictionaries(st.sampled_from(sorted(GOOD_JSON)), HOSTILE_VALUE, max_size=4))
    )
    for name in draw(st.sets(st.sampled_from(sorted(GOOD_JSON)), max_size=2)):
        record.pop(name, None)
    return record


def json_text(record: object, ascii_only: bool) -> bytes:
    # The standard library writes NaN, Infinity and integers of any size, as broken emitters do.
    return one_line(json.dumps(record, ensure_ascii=ascii_only)).encode()


JSON_LINES = st.builds(json_text, json_records() | HOSTILE_VALUE, st.booleans())
LOGFMT_LINES = json_records().map(
    lambda r: " ".join(f"{k}={logfmt_value(v)}" for k, v in r.items()).encode()
)
WORDS = st.lists(HOSTILE_TEXT.map(one_line), min_size=1, max_size=6).map(" ".join)


@st.composite
def access_log_lines(draw: st.DrawFn) -> bytes:
    when = draw(ANY_TIME).strftime("%d/%b/%Y:%H:%M:%S +0000")
    elapsed = draw(st.sampled_from(["0.012", "-", "9" * 400, "9" * 400 + ".5", "1" * 5000, "0"]))
    status = draw(st.sampled_from(["200", "500", "999", "000"]))
    target = one_line(draw(HOSTILE_TEXT)).replace(" ", "").replace('"', "")
    return f'1.2.3.4 - - [{when}] "GET /{target} HTTP/1.1" {status} 5 "-" "-" {elapsed}'.encode()


@st.composite
def serilog_lines(draw: st.DrawFn) -> bytes:
    when = draw(ANY_TIME).replace(tzinfo=None).isoformat(sep=" ")
    zone = draw(st.sampled_from(["", " +14:00", " -12:59", "Z", " +99:99"]))
    elapsed = draw(st.sampled_from(["12.3", "9" * 400, "9" * 5000 + ".1", "0"]))
    return f"[{when}{zone}] [INF] Shop: HTTP GET /x responded 200 in {elapsed} ms".encode()


@st.composite
def conductor_lines(draw: st.DrawFn) -> bytes:
    event = draw(st.sampled_from(["beat-started", "beat-completed", "beat-failed", "beat-x"]))
    values: dict[str, object] = {
        "event": event,
        "request_id": "r-1",
        "sequence": "checkout",
        "beat": "pay",
    }
    values["ts"] = draw(ANY_TIME.map(datetime.isoformat) | HOSTILE_VALUE)
    values.update(
        draw(
            st.dictionaries(
                st.sampled_from([*values, "execution_time_ms", "error"]), HOSTILE_VALUE, max_size=3
            )
        )
    )
    if draw(st.booleans()):
        return json_text(values, ascii_only=False)
    pairs = " ".join(
        f"{k}={logfmt_value(v)}" for k, v in values.items() if k not in ("ts", "event")
    )
    return f"{one_line(str(values['ts']))} {one_line(str(values['event']))} {pairs}".encode()


LINES_BY_KIND: dict[str, st.SearchStrategy[bytes]] = {
    "json": JSON_LINES,
    "logfmt": LOGFMT_LINES,
    "regex": WORDS.map(str.encode),
    "nginx": access_log_lines()
    | st.from_regex(regex_formats.ACCESS_LOG_PATTERN, fullmatch=True).map(str.encode),
    "apache": access_log_lines(),
    "syslog": st.one_of(
        # Lines the patterns accept reach the field conversions, not only the "no match" exit.
        st.from_regex(syslog._RFC5424, fullmatch=True).map(str.encode),
        st.from_regex(syslog._RFC3164, fullmatch=True).map(str.encode),
        st.builds(
            lambda t, host, msg: f"<13>1 {t} {host} app - - - {msg}".encode(),
            ANY_TIME.map(datetime.isoformat),
            st.sampled_from(["-", "web-1"]),
            HOSTILE_TEXT.map(one_line),
        ),
    ),
    "serilog": serilog_lines() | st.from_regex(serilog._LINE, fullmatch=True).map(str.encode),
    "conductor": conductor_lines(),
}


@st.composite
def mutated(draw: st.DrawFn, lines: st.SearchStrategy[bytes]) -> bytes:
    """A line with a few cuts, insertions, deletions and flipped bytes."""
    line = draw(lines)
    for _ in range(draw(st.integers(0, 3))):
        operation = draw(st.sampled_from(["cut", "insert", "delete", "flip"]))
        at = draw(st.integers(0, len(line)))
        if operation == "cut":
            line = line[:at]
        elif operation == "insert":
            extra = draw(st.binary(min_size=1, max_size=6) | st.sampled_from(HOSTILE_BYTES))
            line = line[:at] + extra + line[at:]
        elif operation == "delete":
            line = line[:at] + line[at + draw(st.integers(1, 8)) :]
        elif line:
            index = min(at, len(line) - 1)
            line = (
                line[:index] + bytes([line[index] ^ draw(st.integers(1, 255))]) + line[index + 1 :]
            )
    return line


def hostile_lines(kind: str) -> st.SearchStrategy[bytes]:
    good = st.sampled_from(GOOD_LINES[kind])
    return st.one_of(
        LINES_BY_KIND[kind],
        mutated(good | LINES_BY_KIND[kind]),
        st.binary(max_size=80),
        good.map(lambda line: line + b" " * PARSER_LINE_LIMIT),
    )


def assert_sound(result: object, kind: str) -> None:
    """A parse result is one of the three documented shapes, and a record is well-formed."""
    if result is None:
        assert kind == "conductor", "only the conductor parser holds a line back"
        return
    if isinstance(result, Rejection):
        assert isinstance(result.reason, str) and result.reason
        return
    assert isinstance(result, Record), f"parser returned {type(result).__name__}"
    assert result.timestamp.utcoffset() == timedelta(0)
    assert isinstance(result.component, str) and result.component
    assert result.duration_ms is None or (
        math.isfinite(result.duration_ms) and result.duration_ms >= 0
    )
    assert result.status is None or 0 <= result.status <= 999
    assert all(isinstance(v, str) for v in (result.operation, result.level, result.message))
    assert all(v is None or isinstance(v, str) for v in (result.version, result.instance))
    assert all(isinstance(f.file, str) and isinstance(f.line, int) for f in result.frames)


# --- every parser, line by line -------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMAT_KINDS)
@FAST
@given(data=st.data())
def test_every_parser_returns_a_record_a_rejection_or_nothing(
    kind: FormatKind, data: st.DataObject
) -> None:
    parser = make_parser(spec_of(kind), clock=lambda: NOW)
    for line in data.draw(st.lists(hostile_lines(kind), min_size=1, max_size=6)):
        assert_sound(parser.parse(line), kind)


@pytest.mark.parametrize("kind", ["logfmt", "regex", "nginx", "syslog", "serilog"])
@FAST
@given(data=st.data())
def test_joining_stack_traces_never_breaks_on_hostile_lines(
    kind: FormatKind, data: st.DataObject
) -> None:
    trace = st.sampled_from(
        [
            b"Traceback (most recent call last):",
            b'  File "x.py", line ' + b"9" * 5000,
            b"    at a.b(C.java:1)",
            b"KeyError: 'x'",
        ]
    )
    joined = MultilineParser(make_parser(spec_of(kind), clock=lambda: NOW))
    results = []
    for line in data.draw(st.lists(hostile_lines(kind) | trace, max_size=10)):
        results.extend(joined.feed(line))
    results.extend(joined.flush())
    for result in results:
        assert_sound(result, kind)


CRASHED_ONCE = [
    ("json", b'{"ts": "0001-01-01T00:00:00+01:00", "component": "c"}', "bad_timestamp"),
    ("json", b'{"ts": "9999-12-31T23:59:59-05:00", "component": "c"}', "bad_timestamp"),
    ("logfmt", b"ts=0001-01-01T00:00:00+01:00 component=c", "bad_timestamp"),
    ("syslog", b"<13>1 0001-01-01T00:00:00+01:00 host app - - - m", "bad_timestamp"),
    ("serilog", b"[0001-01-01 00:00:00 +01:00] [INF] Shop: m", "bad_timestamp"),
    (
        "json",
        '{"ts": "2026-11-24T07:30:00Z", "component": "c", "status": "²"}'.encode(),
        "bad_status",
    ),
    ("logfmt", "ts=2026-11-24T07:30:00Z component=c status=²".encode(), "bad_status"),
    ("logfmt", b"ts=2026-11-24T07:30:00Z component=c status=" + b"9" * 5000, "bad_status"),
    (
        "serilog",
        b"[2026-11-24 07:30:00] [INF] Shop: HTTP GET /x responded 200 in " + b"9" * 400 + b" ms",
        "bad_duration",
    ),
    (
        "conductor",
        b'{"event": "beat-completed", "request_id": "r", "sequence": "s", "beat": "b", '
        b'"ts": "0001-01-01T00:00:00Z", "execution_time_ms": 1}',
        None,
    ),
]


@pytest.mark.parametrize(("kind", "line", "reason"), CRASHED_ONCE)
def test_lines_that_once_crashed_a_parser_are_rejected_or_read(
    kind: FormatKind, line: bytes, reason: str | None
) -> None:
    spec = FormatSpec(kind=kind, max_line_bytes=8192)
    result = make_parser(spec, clock=lambda: NOW).parse(line)
    assert_sound(result, kind)
    if reason is not None:
        assert isinstance(result, Rejection) and result.reason == reason, result


def test_a_frame_line_number_too_long_to_be_a_line_yields_no_frame() -> None:
    stack = 'Traceback (most recent call last):\n  File "x.py", line ' + "9" * 5000 + ", in f"
    line = json.dumps({**GOOD_JSON, "stack": stack}).encode()
    result = make_parser(FormatSpec(max_line_bytes=8192)).parse(line)
    assert isinstance(result, Record) and result.frames == ()


# --- poll_sources over real files and a real database --------------------------------------

RETENTION_S = 7 * 86400.0
TELEMETRY_LINE_LIMIT = 4096
FORMAT_LINE_LIMIT = 2048
SHORT_GOOD_LINE = json.dumps({"ts": "2026-11-24T07:30:00Z", "component": "catalog"}).encode()
STANDARD_JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
COMPONENTS = st.sampled_from(["catalog", "cart", "auth", "ünïcode", "with space", "nul\x00byte"])
RECENT = st.integers(min_value=0, max_value=3600 * 6).map(lambda s: NOW - timedelta(seconds=s))


@st.composite
def good_json_lines(draw: st.DrawFn) -> bytes:
    """A record every parser must count: in range, well-typed, in any order."""
    moment = draw(RECENT)
    stamp = draw(
        st.sampled_from(
            [
                moment.isoformat(),
                moment.timestamp(),
                int(moment.timestamp() * 1000),
                moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            ]
        )
    )
    record: dict[str, object] = {"ts": stamp, "component": draw(COMPONENTS)}
    if draw(st.booleans()):
        record["duration_ms"] = draw(
            st.floats(min_value=0, max_value=1e6) | st.sampled_from(["230ms", "1.5s", "0"])
        )
    if draw(st.booleans()):
        record["status"] = draw(st.integers(100, 599))
    if draw(st.booleans()):
        record["instance"] = draw(st.sampled_from(["web-1", "web-2"]))
    if draw(st.booleans()):
        record["version"] = draw(st.text(min_size=1, max_size=20))
    record["message"] = draw(STANDARD_JSON_VALUE)
    line = json_text(record, ascii_only=draw(st.booleans()))
    assume(len(line) < FORMAT_LINE_LIMIT)
    return line


def _with(field: str, value: object) -> bytes:
    return json_text({**GOOD_JSON, field: value}, ascii_only=True)


def _garbage(data: bytes) -> bytes:
    return b"\xff" + data.replace(b"\n", b"")


def _truncated(cut: int) -> bytes:
    whole = json.dumps(GOOD_JSON).encode()
    return whole[: 1 + cut % (len(whole) - 1)]


BAD_JSON_LINES = st.one_of(
    st.binary(max_size=60).map(_garbage),
    st.integers(0, 10_000).map(_truncated),
    st.builds(
        _with,
        st.just("ts"),
        st.sampled_from([{}, [], True, None, "yesterday", "NaN"])
        | HOSTILE_VALUE.filter(lambda v: isinstance(v, dict | list)),
    ),
    st.builds(
        _with,
        st.just("ts"),
        st.integers(1, 7900 * 365).map(
            lambda d: (NOW + timedelta(days=d)).isoformat()
        ),  # < year 9999
    ),
    st.builds(
        _with,
        st.just("ts"),
        st.integers(8, 700_000).map(lambda d: (NOW - timedelta(days=d)).isoformat()),
    ),
    st.builds(_with, st.just("component"), st.sampled_from([{}, [1], {"name": "x"}, True])),
    st.builds(
        _with,
        st.just("duration_ms"),
        st.sampled_from(
            [-1, -0.5, "NaN", "inf", "-5ms", "1e400", {}, [], True, math.nan, math.inf]
        ),
    ),
    st.builds(
        _with, st.just("status"), st.sampled_from([-1, 1000, "abc", {}, [], 2.5, "²", "9" * 5000])
    ),
    st.builds(_with, st.just("level"), st.sampled_from([{}, [], {"name": "error"}])),
    st.builds(_with, st.just("version"), st.sampled_from([{}, [], True, {"sha": "abc"}])),
    st.builds(_with, st.just("stack"), st.sampled_from([{}, 42, [1, 2]])),
    HOSTILE_VALUE.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: json_text(v, ascii_only=True)
    ),
    st.integers(FORMAT_LINE_LIMIT, TELEMETRY_LINE_LIMIT * 2).map(
        lambda n: json.dumps(GOOD_JSON).encode() + b" " * n
    ),
)

GOOD_LOGFMT = st.builds(
    lambda moment, component, ms, status: (
        f'ts={moment.isoformat()} component="{component}" duration={ms}ms status={status} msg="ok"'
    ).encode(),
    RECENT,
    st.sampled_from(["catalog", "cart", "ünïcode"]),
    st.integers(0, 10_000),
    st.integers(100, 599),
)
BAD_LOGFMT = st.one_of(
    st.binary(max_size=60).map(lambda b: b"ts=\xff" + b.replace(b"\n", b"")),
    st.just(b'ts=2026-11-24T07:30:00Z component="unterminated'),
    st.sampled_from([b"-1", b"abc", b"1e400", b"NaN", "²".encode()]).map(
        lambda v: b"ts=2026-11-24T07:30:00Z component=c status=" + v
    ),
    st.sampled_from([b"-5ms", b"inf", b"1e400s", b"12parsecs"]).map(
        lambda v: b"ts=2026-11-24T07:30:00Z component=c duration=" + v
    ),
    st.sampled_from(
        [b"9999-12-31T23:59:59Z", b"0001-01-01T00:00:00+01:00", b"1999-01-01T00:00:00Z", b"soon"]
    ).map(lambda v: b"ts=" + v + b" component=c"),
    st.just(b"ts=2026-11-24T07:30:00Z level=info"),
)


def _settings(folder: Path, kind: str) -> Settings:
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(folder / "data")},
            "telemetry": {
                "retention_s": RETENTION_S,
                "max_line_bytes": TELEMETRY_LINE_LIMIT,
                "sources": [
                    {
                        "name": "app",
                        "paths": [str(folder / "*.log")],
                        "format": {"kind": kind, "max_line_bytes": FORMAT_LINE_LIMIT},
                    }
                ],
            },
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


def _check_polls_count_every_line(
    kind: str, lines: list[tuple[bool, bytes]], split: int, pending: bool
) -> None:
    """Poll the lines in two appends (one line left half-written), then once more."""
    good = sum(1 for is_good, _ in lines if is_good)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "app.log"
        text = [line + b"\n" for _, line in lines]
        first, rest = b"".join(text[:split]), b"".join(text[split:])
        half = len(rest) // 2 if pending else 0
        log.write_bytes(first + rest[:half])
        settings_ = _settings(folder, kind)
        db = open_database(folder / "selfheal.db")
        try:
            reports = [poll_sources(settings_, db, NOW)]
            with log.open("ab") as handle:
                handle.write(rest[half:])
            reports += [poll_sources(settings_, db, NOW), poll_sources(settings_, db, NOW)]
            windows = db.query(window_store.open_windows)
            (cursor,) = db.query(window_store.cursors).values()
        finally:
            db.dispose()
    assert reports[-1].lines == 0 and reports[-1].files_read == 0, "the third poll read again"
    assert sum(w.count for w in windows if w.instance == "") == good
    assert sum(cursor.rejected.values()) == len(lines) - good, cursor.rejected
    assert cursor.lines == len(lines)
    assert sum(r.records for r in reports) == good
    assert sum(r.lines for r in reports) == len(lines)


@SLOW
@given(
    lines=st.lists(
        st.tuples(st.just(True), good_json_lines()) | st.tuples(st.just(False), BAD_JSON_LINES),
        min_size=1,
        max_size=25,
    ),
    split=st.integers(0, 25),
    pending=st.booleans(),
)
@example(lines=[(False, b"\xff"), (True, SHORT_GOOD_LINE)], split=0, pending=True)
def test_json_lines_mixed_with_hostile_ones_are_each_counted_once(
    lines: list[tuple[bool, bytes]], split: int, pending: bool
) -> None:
    _check_polls_count_every_line("json", lines, split, pending)


@SLOW
@given(
    lines=st.lists(
        st.tuples(st.just(True), GOOD_LOGFMT) | st.tuples(st.just(False), BAD_LOGFMT),
        min_size=1,
        max_size=25,
    ),
    split=st.integers(0, 25),
    pending=st.booleans(),
)
def test_logfmt_lines_mixed_with_hostile_ones_are_each_counted_once(
    lines: list[tuple[bool, bytes]], split: int, pending: bool
) -> None:
    assert not any(is_continuation(line, in_trace=True) for _, line in lines)
    _check_polls_count_every_line("logfmt", lines, split, pending)


def test_a_file_shorter_than_its_identity_head_is_not_read_again_as_it_grows(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"\xff\n")  # 2 bytes: the cursor remembers a head shorter than 64 bytes
    db = open_database(tmp_path / "selfheal.db")
    settings_ = _settings(tmp_path, "json")
    first = poll_sources(settings_, db, NOW)
    with log.open("ab") as handle:
        handle.write(SHORT_GOOD_LINE + b"\n")
    second = poll_sources(settings_, db, NOW)
    (cursor,) = db.query(window_store.cursors).values()
    db.dispose()
    assert (first.lines, second.lines, second.records) == (1, 1, 1)
    assert cursor.rejected == {"invalid_utf8": 1}


def test_a_line_over_the_telemetry_limit_is_counted_as_too_long(tmp_path: Path) -> None:
    good = json.dumps({**GOOD_JSON, "stack": None}).encode()
    (tmp_path / "app.log").write_bytes(
        good + b"\n" + b"x" * (TELEMETRY_LINE_LIMIT * 3) + b"\n" + good + b"\n"
    )
    db = open_database(tmp_path / "selfheal.db")
    report = poll_sources(_settings(tmp_path, "json"), db, NOW)
    (cursor,) = db.query(window_store.cursors).values()
    db.dispose()
    assert (report.records, dict(report.rejected)) == (2, {"too_long": 1})
    assert cursor.rejected == {"too_long": 1}


# --- config files ---------------------------------------------------------------------------


def toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def toml_value(value: object) -> str:
    """TOML for a value: tables and arrays inline, so any tree is one ``key = value`` line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(tree: dict[str, object]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in tree.items())


TOML_SCALAR = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    HOSTILE_TEXT,
    st.sampled_from(
        [
            "~no-such-user-here/data",
            "America",
            "zone.tab",
            "../../etc/localtime",
            "(?P<timestamp>a{4294967296})",
            "(?P<timestamp>" + "(" * 120 + "x" + ")" * 120 + ")",
            "(?P<timestamp>[",
            "local-fleet",
            "command",
            "json",
            "regex",
        ]
    ),
    st.datetimes() | st.datetimes(timezones=ODD_ZONES),
    st.dates(),
    st.times(),
)
TOML_VALUE = st.recursive(
    TOML_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
BASE_CONFIG: dict[str, Any] = {
    "agent": {"data_dir": "data", "autonomy": "observe"},
    "telemetry": {"sources": [{"name": "app", "paths": ["logs/*.log"], "format": "json"}]},
    "components": {"catalog": {"paths": ["shop/catalog.py"], "slo_p95_ms": 200}},
    "deploy": {
        "kind": "command",
        "command": {"targets": ["t1"], "deploy": ["true"], "version": ["echo", "abc1234"]},
    },
}
KNOWN_KEYS: list[tuple[str | int, ...]] = [
    ("agent",),
    ("agent", "data_dir"),
    ("agent", "sequences_dir"),
    ("agent", "poll_interval_s"),
    ("agent", "autonomy"),
    ("agent", "max_cycles_per_day"),
    ("agent", "pattern_confidence"),
    ("telemetry",),
    ("telemetry", "sources"),
    ("telemetry", "sources", 0),
    ("telemetry", "sources", 0, "name"),
    ("telemetry", "sources", 0, "paths"),
    ("telemetry", "sources", 0, "format"),
    ("telemetry", "sources", 0, "format", "kind"),
    ("telemetry", "sources", 0, "format", "pattern"),
    ("telemetry", "sources", 0, "format", "fields"),
    ("telemetry", "sources", 0, "format", "timezone"),
    ("telemetry", "sources", 0, "format", "timestamp_formats"),
    ("telemetry", "sources", 0, "format", "max_line_bytes"),
    ("telemetry", "window_s"),
    ("telemetry", "max_line_bytes"),
    ("components",),
    ("components", "catalog"),
    ("components", "catalog", "slo_p95_ms"),
    ("detect", "deviation_factor"),
    ("repository",),
    ("repository", "path"),
    ("repository", "path_prefixes"),
    ("diagnose", "min_confidence"),
    ("validate", "test_command"),
    ("validate", "env"),
    ("deploy",),
    ("deploy", "kind"),
    ("deploy", "waves"),
    ("deploy", "command"),
    ("deploy", "command", "targets"),
    ("deploy", "local_fleet"),
    ("deploy", "local_fleet", "repository"),
    ("deploy", "local_fleet", "targets"),
    ("deploy", "local_fleet", "argv"),
]


def with_value(tree: dict[str, Any], key: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """A deep copy of ``tree`` with ``value`` at ``key``, creating or replacing what is in the way."""
    copy: Any = json.loads(json.dumps(tree))
    node = copy
    for part, following in itertools.pairwise(key):
        child = node[part] if isinstance(node, dict) and part in node else None
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            child = node[part]
        if not isinstance(child, dict | list) or isinstance(following, int) != isinstance(
            child, list
        ):
            child = [{}] if isinstance(following, int) else {}
            node[part] = child
        node = child
    node[key[-1]] = value
    return dict(copy)


def assert_settings_or_config_error(path: Path, data_dir: Path | None = None) -> None:
    try:
        loaded = load_settings(path, data_dir=data_dir)
    except ConfigError as error:
        assert str(path) in str(error), f"the error does not name the file: {error}"
    else:
        assert isinstance(loaded, Settings)


def _load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "selfheal.toml"
        path.write_text(text, encoding="utf-8")
        assert_settings_or_config_error(path)
        assert_settings_or_config_error(path, data_dir=Path(tmp) / "override")  # as --data-dir does


@FAST
@given(
    tree=st.dictionaries(
        st.text(max_size=10) | st.sampled_from(sorted(BASE_CONFIG)), TOML_VALUE, max_size=5
    )
)
def test_a_random_toml_document_gives_settings_or_a_config_error(tree: dict[str, object]) -> None:
    _load_text(toml_document(tree))


@FAST
@given(key=st.sampled_from(KNOWN_KEYS), value=TOML_VALUE)
@example(key=("agent",), value=5)
@example(key=("telemetry",), value=[1])
@example(key=("telemetry", "sources"), value=5)
@example(key=("deploy",), value=3)
@example(key=("deploy", "local_fleet"), value=4)
@example(key=("agent", "data_dir"), value="~no-such-user-here/data")
@example(key=("telemetry", "sources", 0, "format", "pattern"), value="(?P<timestamp>a{4294967296})")
def test_any_value_for_a_known_key_gives_settings_or_a_config_error(
    key: tuple[str | int, ...], value: object
) -> None:
    _load_text(toml_document(with_value(BASE_CONFIG, key, value)))


@FAST
@given(
    text=mutated(st.just(toml_document(BASE_CONFIG).encode())).map(
        lambda b: b.decode("utf-8", "replace")
    )
)
@example(text="a = " + "[" * 5000 + "]" * 5000 + "\n")
def test_a_damaged_config_file_gives_settings_or_a_config_error(text: str) -> None:
    _load_text(text)


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.toml"
    path.write_bytes(b'[agent]\ndata_dir = "\xff"\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_settings(path)


def test_a_wrongly_typed_section_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.toml"
    path.write_text(toml_document(with_value(BASE_CONFIG, ("agent",), 5)))
    with pytest.raises(ConfigError, match="key 'agent'"):
        load_settings(path)


# --- sequence files -------------------------------------------------------------------------

BUNDLED = {p.name: json.loads(p.read_text()) for p in sorted(bundled_folder().glob("phase-*.json"))}
HANDLERS = frozenset(b["handler"] for spec in BUNDLED.values() for b in spec["beats"])
PHASES = frozenset(spec["phase"] for spec in BUNDLED.values())
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
SEQUENCE_KEYS: list[tuple[str | int, ...]] = [
    ("id",),
    ("phase",),
    ("title",),
    ("beats",),
    ("beats", 0),
    ("beats", 0, "id"),
    ("beats", 0, "handler"),
    ("beats", 0, "timeout_s"),
    ("beats", 0, "retries"),
    ("beats", 0, "on_error"),
    ("beats", 1, "id"),
    ("extra",),
]


def _load_sequence_text(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "phase-3-custom.json"
        path.write_bytes(text)
        try:
            loaded = load_sequences(folder, handlers=HANDLERS, phases=PHASES)
        except SequenceError as error:
            assert str(path) in str(error), f"the error does not name the file: {error}"
        else:
            assert next(iter(loaded.values())).beats


def _one_sequence() -> dict[str, Any]:
    return dict(BUNDLED[sorted(BUNDLED)[0]])


@FAST
@given(value=JSON_VALUE)
def test_random_json_gives_sequences_or_a_sequence_error(value: object) -> None:
    _load_sequence_text(json.dumps(value).encode())


@FAST
@given(key=st.sampled_from(SEQUENCE_KEYS), value=JSON_VALUE)
def test_any_value_for_a_sequence_key_gives_sequences_or_a_sequence_error(
    key: tuple[str | int, ...], value: object
) -> None:
    _load_sequence_text(json.dumps(with_value(_one_sequence(), key, value)).encode())


@FAST
@given(text=mutated(st.just(json.dumps(BUNDLED[sorted(BUNDLED)[0]]).encode())))
@example(text=b"[" * 100_000 + b"]" * 100_000)
@example(text=b'{"id": 1' + b"0" * 5000 + b"}")
def test_a_damaged_sequence_file_gives_sequences_or_a_sequence_error(text: bytes) -> None:
    _load_sequence_text(text)
