"""The fast ingestion paths give exactly what the general path gives, and reading stays incremental.

The JSON-lines hot path (``json_ingest``) folds plain lines without building
records, caches each second's window, and hands anything unusual to the
general path. These tests feed the same lines, hand-picked and generated, to
the new fold and to the path it replaced (``line_folding.parse_lines`` then
``windows.fold``), and require the same windows, counts, samples, versions,
frames and rejections. Then: a poll of a 10 GiB file that grew by 1 MiB reads
1 MiB, and the benchmark's code paths run on a few lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import ingest as bench
from states.settings import Settings
from states.telemetry import ingest, tailing
from states.telemetry.formats import FormatSpec, make_parser
from states.telemetry.json_ingest import JsonFastPath
from states.telemetry.records import Record
from storage import window_store
from storage.db import open_database
from storage.tables import CursorRow
from tests.support.json_paths import (
    BOUNDS,
    DROP,
    NOW,
    RETENTION,
    assert_same,
    fast_path,
    line,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- hand-picked lines -----------------------------------------------------------------------


def test_the_default_json_shape_takes_the_fast_path() -> None:
    assert JsonFastPath.for_parser(make_parser(FormatSpec())) is not None


def test_a_dotted_field_mapping_keeps_the_general_path() -> None:
    spec = FormatSpec(fields={"component": ["svc.name"]})
    assert JsonFastPath.for_parser(make_parser(spec)) is None


ODD_VALUES: list[dict[str, Any]] = [
    {},
    {"ts": "2026-03-01T11:59:30Z"},
    {"ts": "2026-03-01T11:59:30.5Z"},
    {"ts": "2026-03-01T11:59:30.123456789+01:00"},
    {"ts": "2026-03-01 11:59:30,5"},
    {"ts": "2026-03-01T11:59:30."},
    {"ts": "2026-03-01T11:59:30.Z"},
    {"ts": "2026-03-01T11:59:30..5Z"},
    {"ts": "2026-03-01T11:59:30.12.5Z"},
    {"ts": "2026-03-01T11:59:30.\u0663Z"},
    {"ts": "2026-03-01T11:59:30.5+01:00:00.5"},
    {"ts": "2026-03-01T11:59:30+00:00:00.5"},
    {"ts": "2026-03-01"},
    {"ts": "2026-03-01T11:59"},
    {"ts": "20260301T115930.5Z"},
    {"ts": "2026-03-01T11:59:60Z"},
    {"ts": 1772366370},
    {"ts": 1772366370.75},
    {"ts": 1772366370750},
    {"ts": True},
    {"ts": None, "timestamp": "2026-03-01T11:59:31Z"},
    {"ts": DROP, "time": "2026-03-01T11:59:32.1Z"},
    {"ts": "yesterday"},
    {"ts": (NOW + ingest.FUTURE_TOLERANCE).isoformat()},
    {"ts": (NOW + ingest.FUTURE_TOLERANCE + timedelta(microseconds=1)).isoformat()},
    {"ts": (NOW + ingest.FUTURE_TOLERANCE - timedelta(microseconds=1)).isoformat()},
    {"ts": (NOW - RETENTION).isoformat()},
    {"ts": (NOW - RETENTION - timedelta(microseconds=1)).isoformat()},
    {"ts": (NOW - RETENTION).replace(microsecond=0).isoformat()},
    {"ts": (NOW + ingest.FUTURE_TOLERANCE).replace(microsecond=0).isoformat() + ".9"},
    {"component": ""},
    {"component": None, "service": "cart"},
    {"component": 7},
    {"component": ["a"]},
    {"operation": None},
    {"operation": 3},
    {"operation": {"x": 1}},
    {"duration_ms": 12},
    {"duration_ms": -1},
    {"duration_ms": -0.0},
    {"duration_ms": 0},
    {"duration_ms": 1e300},
    {"duration_ms": 366 * 24 * 3_600_000.0},
    {"duration_ms": 366 * 24 * 3_600_000},
    {"duration_ms": 366 * 24 * 3_600_000 + 1},
    {"duration_ms": "15ms"},
    {"duration_ms": True},
    {"duration_ms": None},
    {"status": 500},
    {"status": 999},
    {"status": 1000},
    {"status": -1},
    {"status": "503"},
    {"status": 200.0},
    {"status": False},
    {"level": "ERROR"},
    {"level": "warn"},
    {"level": "Warning"},
    {"level": "fatal"},
    {"level": 3},
    {"level": None, "severity": "err"},
    {"level": ["x"]},
    {"level": "   "},
    {"version": ""},
    {"version": 2},
    {"version": None},
    {"instance": ""},
    {"instance": None, "host": "web-9"},
    {"instance": 4},
    {"instance": {"x": 1}},
    {"message": {"nested": True}},
    {"stack": None},
    {"stack": 'Traceback:\n  File "shop/catalog.py", line 12, in search\nValueError'},
    {"stack_trace": ['  File "shop/catalog.py", line 12, in search']},
    {"exc_info": 5},
]


@pytest.mark.parametrize("window_s", [60.0, 1.0, 0.5, 7.5, 3600.0])
def test_odd_values_fold_as_the_general_path_folds_them(window_s: float) -> None:
    lines = [line(**values) for values in ODD_VALUES]
    lines += [b"", b"   ", b"not json", b"[1, 2]", b'"text"', b"{", b"\xff\xfe", b"{}"]
    lines += [line(ts=(NOW - timedelta(seconds=s / 7)).isoformat()) for s in range(400)]
    assert_same(FormatSpec(), lines, window_s)


@pytest.mark.parametrize(
    "spec",
    [
        FormatSpec(timezone="Europe/Paris"),
        FormatSpec(timezone="+05:30"),
        FormatSpec(timestamp_formats=["epoch", "iso8601"]),
        FormatSpec(timestamp_formats=["%Y-%m-%d %H:%M:%S"]),
        FormatSpec(duration_unit="s"),
        FormatSpec(duration_unit="ns"),
        FormatSpec(component="shop", fields={"component": []}),
        FormatSpec(fields={"timestamp": ["when", "ts"], "stack": ["a", "b", "c", "d"]}),
        FormatSpec(max_line_bytes=200),
    ],
    ids=lambda spec: repr(spec.model_dump(exclude_defaults=True)),
)
def test_other_configurations_fold_as_the_general_path(spec: FormatSpec) -> None:
    naive = [(NOW - timedelta(seconds=s, milliseconds=s)).replace(tzinfo=None) for s in range(90)]
    lines = [line(ts=moment.isoformat()) for moment in naive]
    lines += [line(ts=moment.strftime("%Y-%m-%d %H:%M:%S")) for moment in naive[:10]]
    lines += [line(**values) for values in ODD_VALUES]
    lines += [line(when="2026-03-01T11:59:00Z", ts=DROP), line(d="x", duration_ms=2)]
    lines += [line(message="m" * 300)]
    assert_same(spec, lines)


def test_a_window_with_many_samples_is_sketched_identically() -> None:
    lines = [line(duration_ms=1 + i % 977 * 0.37, instance=f"web-{i % 3}") for i in range(5000)]
    assert_same(FormatSpec(), lines)
    parts, _, _ = fast_path(FormatSpec(), lines, 60.0)
    assert all(part.sketch is not None and not part.samples for part in parts.values())


def test_lines_interleaving_fast_and_general_keep_frames_in_record_order() -> None:
    frames = [f'  File "shop/m{i}.py", line {i}, in f{i}' for i in range(25)]
    lines = [line(stack=[frame], instance=f"web-{i % 2}") for i, frame in enumerate(frames)]
    lines = [item for pair in zip(lines, [line()] * 25, strict=True) for item in pair]
    assert_same(FormatSpec(), lines)


# --- generated lines ---------------------------------------------------------------------------

_fraction = st.text(alphabet="0123456789", min_size=0, max_size=9)
_zone = st.sampled_from(["", "Z", "+00:00", "+01:00", "-05:30", "+0100", "+01:00:00.5"])
_separator = st.sampled_from(["T", " "])


@st.composite
def iso_timestamps(draw: st.DrawFn) -> str:
    # Around "now", around the oldest accepted time, and just past the future bound.
    anchor = draw(st.sampled_from([NOW, BOUNDS.oldest, BOUNDS.latest]))
    moment = anchor + timedelta(seconds=draw(st.integers(-3, 3)))
    head = moment.replace(tzinfo=None).isoformat(sep=draw(_separator), timespec="seconds")
    fraction = draw(_fraction)
    return head + ("." + fraction if fraction or draw(st.booleans()) else "") + draw(_zone)


_values: dict[str, st.SearchStrategy[Any]] = {
    "ts": st.one_of(
        iso_timestamps(),
        st.integers(1_772_360_000, 1_772_370_000),
        st.floats(1.772e9, 1.773e9),
        st.text(max_size=12),
        st.none(),
    ),
    "component": st.one_of(st.sampled_from(["catalog", "cart", ""]), st.none(), st.integers()),
    "operation": st.one_of(st.sampled_from(["GET /x", ""]), st.none(), st.booleans()),
    "duration_ms": st.one_of(
        st.floats(allow_nan=False), st.integers(-5, 10**12), st.none(), st.just("12ms")
    ),
    "status": st.one_of(st.integers(-2, 1002), st.none(), st.just("500"), st.booleans()),
    "level": st.one_of(
        st.sampled_from(["info", "INFO", "warn", "error", "fatal", "weird", ""]),
        st.none(),
        st.integers(0, 9),
    ),
    "version": st.one_of(st.sampled_from(["v1", "v2", ""]), st.none(), st.integers(0, 3)),
    "instance": st.one_of(st.sampled_from(["web-1", "web-2", ""]), st.none(), st.integers(0, 2)),
    "stack": st.one_of(st.none(), st.just('  File "a.py", line 1, in f')),
}


@st.composite
def json_lines(draw: st.DrawFn) -> bytes:
    record = {key: draw(values) for key, values in _values.items() if draw(st.integers(0, 9))}
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=40))
    return json.dumps(record).encode()


@PROPERTY
@given(
    lines=st.lists(json_lines(), max_size=60),
    window_s=st.sampled_from([60.0, 1.0, 0.25, 2.5]),
    spec=st.sampled_from(
        [FormatSpec(), FormatSpec(timezone="Europe/Paris"), FormatSpec(duration_unit="us")]
    ),
)
def test_generated_lines_fold_as_the_general_path(
    lines: list[bytes], window_s: float, spec: FormatSpec
) -> None:
    assert_same(spec, lines, window_s)


# --- reading only what is new -------------------------------------------------------------------


def _settings(root: Path, log: Path) -> Settings:
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data")},
            "telemetry": {"sources": [{"name": "app", "paths": [str(log)]}]},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


def _bytes_read_by_this_process() -> int:
    for entry in Path("/proc/self/io").read_text().splitlines():
        if entry.startswith("rchar:"):
            return int(entry.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.fixture
def read_results(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tailing.ReadResult]]:
    """The ``ReadResult`` of every file the poll reads, once read."""
    seen: list[tailing.ReadResult] = []

    class Recording(tailing.NewLines):
        def __iter__(self) -> Iterator[Sequence[bytes]]:
            yield from super().__iter__()
            seen.append(self.result)

    monkeypatch.setattr(ingest, "NewLines", Recording)
    yield seen


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_a_poll_of_a_10_gib_file_that_grew_by_1_mib_reads_about_1_mib(
    tmp_path: Path, read_results: list[tailing.ReadResult]
) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    with log.open("wb") as handle:  # sparse: 10 GiB long, nothing on disk
        handle.truncate(10 * 2**30)
    settings = _settings(tmp_path, log)
    db = open_database(settings.agent.data_dir / "selfheal.db")
    st_ = log.stat()
    cursor = CursorRow(
        key=f"app:{log}",
        source="app",
        path=str(log),
        device=st_.st_dev,
        inode=st_.st_ino,
        offset=st_.st_size,
        head=bytes(tailing.HEAD_BYTES).hex(),
        updated_at=NOW,
    )
    db.transact(lambda s: s.add(cursor))
    complete_lines = [line(ts=(NOW - timedelta(seconds=i / 100)).isoformat()) for i in range(4900)]
    new_lines = b"".join(raw + b"\n" for raw in complete_lines)
    new_lines += b"{" + b"x" * (2**20 - len(new_lines) - 1)  # a line still being written
    assert len(new_lines) == 2**20
    with log.open("ab") as handle:
        handle.write(new_lines)

    before = _bytes_read_by_this_process()
    report = ingest.poll_sources(settings, db, NOW)
    read = _bytes_read_by_this_process() - before

    [result] = read_results
    complete = new_lines.rfind(b"\n") + 1
    assert result.bytes_read == complete
    assert report.lines == report.records == 4900
    assert read < 2**20 + 256 * 1024  # the new MiB, plus the database's pages
    stored = db.query(window_store.cursors)[f"app:{log}"]
    assert stored.offset == 10 * 2**30 + complete
    db.dispose()


def test_polls_after_the_first_read_only_what_was_appended(
    tmp_path: Path, read_results: list[tailing.ReadResult]
) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    first = b"".join(line() + b"\n" for _ in range(20_000))
    log.write_bytes(first)
    settings = _settings(tmp_path, log)
    db = open_database(settings.agent.data_dir / "selfheal.db")
    ingest.poll_sources(settings, db, NOW)
    grown = b"".join(line() + b"\n" for _ in range(10))
    with log.open("ab") as handle:
        handle.write(grown)

    ingest.poll_sources(settings, db, NOW)

    assert [r.bytes_read for r in read_results] == [len(first), len(grown)]
    db.dispose()


# --- the benchmark's own paths --------------------------------------------------------------


def test_the_ingest_benchmark_accounts_for_every_line_and_writes_json(tmp_path: Path) -> None:
    results = bench.run(lines=400, repeats=1, formats=["json", "syslog"])

    rows = {row["name"]: row for row in results["rows"]}
    for kind in ("json", "syslog"):
        stored = rows[f"{kind}: end to end"]["stored"]
        assert stored["counted"] == stored["records"] == 400
        assert stored["rejected"] == {}
    assert rows["syslog: end to end"]["stored"]["templates"] > 0
    assert rows["syslog: end to end"]["stored"]["template_keys_in_windows"] > 0
    assert "json: orjson.loads alone" in rows
    assert "syslog: drain3 alone, default config" in rows
    assert "json: end to end, operation figures off" in rows
    ratios = {
        "json_end_to_end_over_orjson",
        "json_end_to_end_over_operation_figures_off",
        "syslog_end_to_end_over_drain3_default",
        "syslog_end_to_end_over_drain3_masked",
    }
    assert set(results["cpu_ratios"]) == ratios | {f"{name}_pairwise" for name in ratios}
    for name in (
        "json: end to end",
        "json: orjson.loads alone",
        "syslog: drain3 alone, default config",
    ):
        assert len(rows[name]["cpu_all_s"]) == 1  # one repeat: one pair
    out = tmp_path / "ingest.json"
    assert (
        bench.main(["--lines", "50", "--repeats", "1", "--formats", "nginx", "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["rows"][0]["stored"]["counted"] == 50


def test_the_benchmark_generators_write_lines_each_format_accepts() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for kind in bench.FORMATS:
        parser = make_parser(FormatSpec(kind=kind))
        results = [parser.parse(raw.encode()) for raw in bench.log_lines(kind, 200, now)]
        assert all(isinstance(result, Record) for result in results), kind
