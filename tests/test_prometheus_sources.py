"""Prometheus metric sources: the text format, scrape arithmetic, and the query API.

The query client is tested against a real Prometheus server (Debian's
package, installed and started by scripts/prometheus-server.sh) that scrapes
an exposition endpoint served here; hostile answers come from a small HTTP
server of our own that misbehaves on purpose.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent.settings import ConfigError, load_settings
from states.detect import beats as detect_beats
from states.settings import Settings
from states.telemetry.ingest import has_new_telemetry, poll_sources
from states.telemetry.metric_windows import histogram_quantile, increase, rate
from states.telemetry.prometheus_api import HttpResponse, SourceError, parse_query_response
from states.telemetry.prometheus_text import parse_exposition, parse_selector
from states.telemetry.window_rows import close_due_windows
from storage import repository as repo
from storage import window_store
from storage.db import Database, open_database
from storage.tables import WindowRow
from tests.support.http_endpoint import Endpoint, serving_page

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "prometheus-server.sh"
T0 = datetime(2026, 11, 24, 7, 30, 5, tzinfo=UTC)
INF = math.inf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- exposition text ---------------------------------------------------------------

BOUNDS = (0.1, 0.25, 0.5, 1.0, INF)


def exposition(
    ok: float, failed: float | None, buckets: tuple[float, ...], *, junk: bool = True
) -> str:
    """Requests by status and a latency histogram (seconds), as a service exposes them."""
    lines = [
        "# HELP http_requests_total Requests served.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{component="checkout",instance="a",status="200"}} {ok}',
    ]
    if failed is not None:
        lines.append(
            f'http_requests_total{{component="checkout",instance="a",status="500"}} {failed}'
        )
    lines += [
        "# HELP http_request_duration_seconds Time to serve a request.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for bound, count in zip(BOUNDS, buckets, strict=True):
        le = "+Inf" if bound == INF else repr(bound)
        lines.append(
            f'http_request_duration_seconds_bucket{{component="checkout",instance="a",le="{le}"}} {count}'
        )
    lines += [
        f'http_request_duration_seconds_sum{{component="checkout",instance="a"}} {buckets[-1] * 0.2}',
        f'http_request_duration_seconds_count{{component="checkout",instance="a"}} {buckets[-1]}',
    ]
    if junk:  # Prometheus itself would refuse the whole scrape for it
        lines += ["# a comment, then a line that is not a sample", "this is not a sample"]
    return "\n".join(lines) + "\n"


# Per second: 100 requests, 5 of them failed; cumulative buckets 60/90/100/100/100.
# P50 = 0.1 x 50/60, P95 = 0.25 + 0.25 x 5/10, P99 = 0.25 + 0.25 x 9/10 (seconds).
RATES = (60.0, 90.0, 100.0, 100.0, 100.0)
P50_MS, P95_MS, P99_MS = 100 * 50 / 60, 375.0, 475.0


# A resident set growing by 2 MB a second from 100 MB: a leak reaching 1 GB in 7.5 minutes.
RSS_START, RSS_PER_S = 100e6, 2e6


def live_exposition(started: float) -> str:
    """Counters growing at the rates above since ``started`` (wall clock), and a leaking RSS."""
    elapsed = time.time() - started
    requests = exposition(
        round(95 * elapsed, 3),
        round(5 * elapsed, 3),
        tuple(round(r * elapsed, 3) for r in RATES),
        junk=False,
    )
    return requests + (
        "# TYPE process_resident_memory_bytes gauge\n"
        f'process_resident_memory_bytes{{component="checkout",instance="a"}} '
        f"{RSS_START + RSS_PER_S * elapsed:.0f}\n"
    )


# --- configuration -------------------------------------------------------------------


def write_config(tmp_path: Path, telemetry: str, *, window_s: float = 60.0) -> Settings:
    path = tmp_path / "selfheal.toml"
    path.write_text(
        f"""
[agent]
data_dir = "data"
[telemetry]
window_s = {window_s}
lateness_s = 1.5
{telemetry}
[deploy]
kind = "command"
[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["echo", "abc1234"]
"""
    )
    return load_settings(path)


def scrape_table(name: str, url: str, **extra: str) -> str:
    table = f"""
[[telemetry.metrics]]
name = "{name}"
kind = "scrape"
url = "{url}"
timeout_s = 0.5
requests = "http_requests_total"
errors = 'http_requests_total{{status=~"5.."}}'
latency = "http_request_duration_seconds"
"""
    return table + "".join(f"{k} = {v}\n" for k, v in extra.items())


QUERIES = """
[telemetry.metrics.queries]
count = 'sum by (component) (increase(http_requests_total[$window]))'
errors = 'sum by (component) (increase(http_requests_total{status=~"5.."}[$window]))'
error_rate = '''sum by (component) (rate(http_requests_total{status=~"5.."}[$window]))
  / sum by (component) (rate(http_requests_total[$window]))'''
p50 = 'histogram_quantile(0.50, sum by (le, component) (rate(http_request_duration_seconds_bucket[$window])))'
p95 = 'histogram_quantile(0.95, sum by (le, component) (rate(http_request_duration_seconds_bucket[$window])))'
p99 = 'histogram_quantile(0.99, sum by (le, component) (rate(http_request_duration_seconds_bucket[$window])))'
"""


def query_table(name: str, url: str, timeout_s: float = 2.0, queries: str = QUERIES) -> str:
    return f"""
[[telemetry.metrics]]
name = "{name}"
kind = "query"
url = "{url}"
timeout_s = {timeout_s}
{queries}"""


def windows(db: Database, instance: str | None = "") -> list[WindowRow]:
    def load(session: repo.Session) -> list[WindowRow]:
        rows = []
        for component in ("checkout", "scraped", "cart"):
            rows += window_store.component_windows(session, component, instance=instance)
        return rows

    return db.query(load)


# --- the text format -------------------------------------------------------------------

EVERY_TYPE = r"""# HELP http_requests_total Requests, with a \\ backslash and a\nsecond line.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400",} 3
# TYPE queue_depth gauge
queue_depth -2.5
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.99"} NaN
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.05"} 24054
latency_seconds_bucket{le="+Inf"} 144320
latency_seconds_sum 53423
latency_seconds_count 144320
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
untyped_thing 1 # {trace_id="abc"} 1.0
# a comment
# EOF
"""

MALFORMED = """ok_total 1
9starts_with_a_digit 1
no_value{a="b"}
bad_value_total abc
unterminated{a="b} 1
bad_escape{a="\\q"} 1
duplicate{a="1",a="2"} 1
bad_timestamp 1 soon
too_many 1 2 3
digit_separators 1_000
# TYPE ok_total sometimes
"""


def test_every_metric_type_parses_with_help_labels_escapes_and_timestamps() -> None:
    parsed = parse_exposition(EVERY_TYPE)

    assert parsed.rejected == {}
    requests = parsed.families["http_requests_total"]
    assert requests.type == "counter"
    assert requests.help == "Requests, with a \\ backslash and a\nsecond line."
    first, second = requests.samples
    assert (first.label("code"), first.value, first.timestamp_ms) == ("200", 1027, 1395066363000)
    assert second.labels == (("code", "400"), ("method", "post"))  # trailing comma allowed
    assert parsed.families["queue_depth"].samples[0].value == -2.5
    summary = parsed.families["rpc_duration_seconds"]
    assert summary.type == "summary"
    assert [s.name for s in summary.samples] == [
        "rpc_duration_seconds",
        "rpc_duration_seconds",
        "rpc_duration_seconds_sum",
        "rpc_duration_seconds_count",
    ]
    assert math.isnan(summary.samples[1].value)
    histogram = parsed.families["latency_seconds"]
    assert histogram.type == "histogram"
    assert [(s.label("le"), s.value) for s in histogram.samples[:2]] == [
        ("0.05", 24054),
        ("+Inf", 144320),
    ]
    escaped = parsed.families["msdos_file_access_time_seconds"].samples[0]
    assert escaped.label("path") == "C:\\DIR\\FILE.TXT"
    assert escaped.label("error") == 'Cannot find file:\n"FILE.TXT"'
    assert parsed.families["untyped_thing"].samples[0].value == 1  # exemplar ignored


def test_malformed_lines_are_counted_by_reason_and_skipped() -> None:
    parsed = parse_exposition(MALFORMED)

    assert [s.name for s in parsed.samples()] == ["ok_total"]
    assert parsed.families["ok_total"].type == "untyped"
    assert parsed.rejected == {
        "bad_name": 1,
        "bad_value": 4,
        "bad_labels": 1,
        "bad_escape": 1,
        "duplicate_label": 1,
        "bad_timestamp": 1,
        "bad_type": 1,
    }


def test_selectors_match_like_promql_and_bad_ones_are_refused() -> None:
    selector = parse_selector('http_requests_total{status=~"5..", path!="/metrics"}')
    [*samples] = parse_exposition(
        'http_requests_total{status="503",path="/buy"} 1\n'
        'http_requests_total{status="5031",path="/buy"} 1\n'
        'http_requests_total{status="500",path="/metrics"} 1\n'
        'other_total{status="500"} 1\n'
    ).samples()
    assert [selector.matches(s) for s in samples] == [True, False, False, False]
    for bad in ("{a='b'}", 'x{a~"b"}', 'x{a="b"} y', 'x{a=~"("}'):
        with pytest.raises(ValueError):
            parse_selector(bad)


# --- arithmetic -----------------------------------------------------------------------


def test_counter_increase_and_rate_treat_a_drop_as_a_reset() -> None:
    assert increase(100, 130) == 30
    assert increase(130, 12) == 12  # restarted: everything since the restart
    assert increase(None, 7) == 7  # a new series counts from zero
    assert rate(100, 160, 30) == 2.0
    assert rate(160, 30, 30) == 1.0
    with pytest.raises(ValueError):
        rate(1, 2, 0)


def test_histogram_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = list(zip(BOUNDS, RATES, strict=True))

    assert histogram_quantile(0.5, buckets) == pytest.approx(P50_MS / 1000)
    assert histogram_quantile(0.95, buckets) == pytest.approx(P95_MS / 1000)
    assert histogram_quantile(0.99, buckets) == pytest.approx(P99_MS / 1000)
    # A rank in the +Inf bucket answers the highest finite bound.
    assert histogram_quantile(0.99, [(0.1, 10), (0.5, 20), (INF, 100)]) == 0.5
    # Order does not matter, equal bounds are merged, skewed counts are made monotonic.
    assert histogram_quantile(0.5, [(INF, 10), (1.0, 10), (0.5, 5)]) == 0.5
    assert histogram_quantile(0.5, [(1.0, 4), (1.0, 6), (INF, 10)]) == 0.5
    assert histogram_quantile(0.5, [(0.5, 6), (1.0, 5), (INF, 10)]) == pytest.approx(5 / 12)
    # Undefined: no observations, no +Inf bucket, a single bucket; q outside [0, 1].
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0), (INF, 0)]))
    assert math.isnan(histogram_quantile(0.5, [(0.1, 3), (1.0, 5)]))
    assert math.isnan(histogram_quantile(0.5, [(INF, 5)]))
    assert histogram_quantile(1.5, buckets) == INF
    assert histogram_quantile(-1, buckets) == -INF


# --- scrape sources -----------------------------------------------------------------


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = serving_page()
    yield served
    served.close()


def test_two_scrapes_make_a_window_and_the_cursor_survives_a_restart(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    settings = write_config(
        tmp_path,
        scrape_table("app", endpoint.url + "/metrics", instance_label='"instance"'),
    )
    page = endpoint.page
    page["text"] = exposition(100, None, (10, 20, 30, 30, 30))
    db = open_database(settings.agent.data_dir / "selfheal.db")
    first = poll_sources(settings, db, T0)
    assert (first.metric_sources_read, first.metric_windows, first.errors) == (1, 0, {})
    db.dispose()  # the agent restarts between the two scrapes

    page["text"] = exposition(195, 5, (70, 110, 130, 130, 130))  # the first 500 appears
    db = open_database(settings.agent.data_dir / "selfheal.db")
    second = poll_sources(settings, db, T0 + timedelta(seconds=56))

    assert second.metric_windows == 2  # all instances, and instance "a"
    assert second.rejected == {"bad_value": 1}  # "this is not a sample"
    for window in windows(db, instance=None):
        assert (window.start, window.end) == (
            datetime(2026, 11, 24, 7, 30, tzinfo=UTC),
            datetime(2026, 11, 24, 7, 31, tzinfo=UTC),
        )
        assert (window.count, window.errors, window.error_rate) == (100, 5, 0.05)
        assert window.p50 == pytest.approx(P50_MS)
        assert window.p95 == pytest.approx(P95_MS)
        assert window.p99 == pytest.approx(P99_MS)
        assert window.closed and window.health == 95.0
    assert sorted(w.instance for w in windows(db, instance=None)) == ["", "a"]
    cursor = db.query(window_store.cursors)["app:" + endpoint.url + "/metrics"]
    assert cursor.offset == int((T0 + timedelta(seconds=56)).timestamp())
    assert cursor.rejected == {"bad_value": 2}  # once per scrape
    db.dispose()


def test_a_counter_reset_between_scrapes_counts_from_zero(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    settings = write_config(tmp_path, scrape_table("app", endpoint.url + "/metrics"))
    page = endpoint.page
    db = open_database(settings.agent.data_dir / "selfheal.db")
    page["text"] = exposition(1000, 70, (700, 900, 1000, 1070, 1070))
    poll_sources(settings, db, T0)
    page["text"] = exposition(40, 4, (20, 40, 44, 44, 44))  # the service restarted
    report = poll_sources(settings, db, T0 + timedelta(seconds=56))

    (window,) = windows(db)
    assert report.metric_windows == 1
    assert (window.count, window.errors) == (44, 4)
    # Buckets since the restart: 20/40/44 -> rank 41.8 in (0.25, 0.5] -> 0.25 + 0.25 x 1.8/4.
    assert window.p95 == pytest.approx(362.5)
    db.dispose()


def test_a_long_gap_between_scrapes_gives_no_window(tmp_path: Path, endpoint: Endpoint) -> None:
    settings = write_config(tmp_path, scrape_table("app", endpoint.url + "/metrics"))
    page = endpoint.page
    db = open_database(settings.agent.data_dir / "selfheal.db")
    page["text"] = exposition(100, 1, (10, 20, 30, 30, 30))
    poll_sources(settings, db, T0)
    page["text"] = exposition(9100, 91, (3010, 6020, 9030, 9030, 9030))
    report = poll_sources(settings, db, T0 + timedelta(hours=2))

    assert report.metric_windows == 0 and report.rejected["gap"] == 1
    db.dispose()


def test_an_unreadable_cursor_starts_afresh_instead_of_failing(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    settings = write_config(tmp_path, scrape_table("app", endpoint.url + "/metrics"))
    db = open_database(settings.agent.data_dir / "selfheal.db")
    endpoint.page["text"] = exposition(100, 1, (10, 20, 30, 30, 30))
    poll_sources(settings, db, T0)
    key = "app:" + endpoint.url + "/metrics"

    def spoil(session: repo.Session) -> None:
        row = window_store.cursors(session)[key]
        row.head = '{"version": 1, "series": {"x": "not a number"}, "pending": 7}'
        session.add(row)

    db.transact(spoil)
    report = poll_sources(settings, db, T0 + timedelta(seconds=56))

    assert (report.errors, report.metric_windows) == ({}, 0)  # a new baseline, no bogus delta
    assert (
        json.loads(db.query(window_store.cursors)[key].head)["at"]
        == (T0 + timedelta(seconds=56)).timestamp()
    )
    db.dispose()


# --- failing sources never block the others ------------------------------------------------


def test_slow_missing_and_broken_sources_are_reported_and_a_log_source_still_reads(
    tmp_path: Path,
) -> None:
    def respond(path: str, form: dict[str, str]) -> tuple[int, str, float]:
        if path.startswith("/slow"):
            return 200, exposition(1, 0, (1, 1, 1, 1, 1)), 5.0
        if path.startswith("/gone"):
            return 404, "404 page not found", 0.0
        return 200, exposition(1, 0, (1, 1, 1, 1, 1)), 0.0

    server = Endpoint(respond)
    (tmp_path / "logs").mkdir()
    line = '{"ts": "2026-11-24T07:30:00Z", "component": "cart", "duration_ms": 12, "status": 200}\n'
    (tmp_path / "logs" / "app.log").write_text(line * 3)
    log_source = '[[telemetry.sources]]\nname = "logs"\npaths = ["logs/*.log"]\nformat = "json"\n'
    tables = [
        log_source,
        scrape_table("slow", server.url + "/slow/metrics"),
        scrape_table("gone", server.url + "/gone/metrics"),
        scrape_table("missing", f"http://127.0.0.1:{free_port()}/metrics"),
        scrape_table("healthy", server.url + "/metrics"),
    ]
    settings = write_config(tmp_path, "\n".join(tables))
    db = open_database(settings.agent.data_dir / "selfheal.db")
    assert has_new_telemetry(settings, db)

    started = time.monotonic()
    report = poll_sources(settings, db, T0)
    elapsed = time.monotonic() - started

    assert elapsed < 2.5  # the slow source cost its timeout, not its 5 s
    assert report.records == 3
    assert [w.component for w in db.query(window_store.open_windows) if w.instance == ""] == [
        "cart"
    ]
    assert report.metric_sources_read == 1
    assert set(report.errors) == {"slow", "gone", "missing"}
    assert report.errors["slow"].startswith("timeout:")
    assert report.errors["gone"].startswith("http_error: HTTP 404")
    assert report.errors["missing"].startswith("unreachable:")
    cursors = db.query(window_store.cursors)
    assert cursors["slow:" + server.url + "/slow/metrics"].rejected == {"timeout": 1}
    assert cursors["healthy:" + server.url + "/metrics"].head  # its scrape is kept
    db.dispose()
    server.close()


def hostile(path: str, form: dict[str, str]) -> tuple[int, str, float]:
    """A Prometheus API that answers every way but the right one, by path."""
    end = form.get("end", "0")
    if path.startswith("/down"):
        return 503, "Service Unavailable", 0.0
    if path.startswith("/garbage"):
        return 200, "<html>not json", 0.0
    if path.startswith("/deep"):
        return 200, "[" * 100_000, 0.0
    if path.startswith("/refused"):
        body: dict[str, Any] = {
            "status": "error",
            "errorType": "bad_data",
            "error": "parse error at char 4",
        }
        return 400, json.dumps(body), 0.0
    if path.startswith("/shape"):
        body = {"status": "success", "data": {"resultType": "matrix", "result": [{"values": 3}]}}
        return 200, json.dumps(body), 0.0
    if path.startswith("/slow"):
        return 200, "{}", 5.0
    value = "NaN" if "histogram_quantile" in form.get("query", "") else "12"
    series = [{"metric": {"component": "checkout"}, "values": [[float(end), value]]}]
    body = {"status": "success", "data": {"resultType": "matrix", "result": series}}
    return 200, json.dumps(body), 0.0


def test_hostile_query_answers_are_reported_per_source_and_never_raise(tmp_path: Path) -> None:
    server = Endpoint(hostile)
    kinds = ("down", "garbage", "deep", "refused", "shape", "slow", "nan")
    settings = write_config(
        tmp_path, "".join(query_table(k, f"{server.url}/{k}", timeout_s=0.5) for k in kinds)
    )
    db = open_database(settings.agent.data_dir / "selfheal.db")
    now = datetime.now(UTC)

    started = time.monotonic()
    report = poll_sources(settings, db, now)

    assert time.monotonic() - started < 2.5
    reasons = {name: message.split(":")[0] for name, message in report.errors.items()}
    assert reasons == {
        "down": "http_error",
        "garbage": "invalid_json",
        "deep": "invalid_json",
        "refused": "query_error",
        "shape": "bad_shape",
        "slow": "timeout",
        "nan": "p50",
    }
    assert "bad_data: parse error at char 4" in report.errors["refused"]
    assert "p95: 1 NaN/Inf value(s) skipped" in report.errors["nan"]
    # The NaN source still wrote its window (counts known, quantiles unknown).
    (window,) = windows(db)
    assert (window.count, window.errors, window.p95) == (12, 12, None)
    assert window.error_rate == 1.0  # 12 of 12; the impossible error_rate 12 was refused
    # A failed source's cursor did not move: the next poll asks for the same windows.
    cursors = db.query(window_store.cursors)
    assert cursors["down:" + server.url + "/down"].head == ""
    assert cursors["down:" + server.url + "/down"].rejected == {"http_error": 1}
    db.dispose()
    server.close()


def test_query_response_shapes() -> None:
    def parse(document: object, status: int = 200) -> list[tuple[dict[str, str], float, float]]:
        points = parse_query_response(HttpResponse(status, json.dumps(document).encode()))
        return [(dict(p.labels), p.timestamp, p.value) for p in points]

    vector = {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [10, "2.5"]}]}
    assert parse({"status": "success", "data": vector}) == [({"a": "b"}, 10.0, 2.5)]
    scalar = {"resultType": "scalar", "result": [10, "+Inf"]}
    assert parse({"status": "success", "data": scalar}) == [({}, 10.0, INF)]
    broken: object
    for broken in (
        [],
        {"status": "success"},
        {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, True]}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"a": 1}}]}},
    ):
        with pytest.raises(SourceError):
            parse(broken)


def test_metric_source_settings_are_validated_by_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("telemetry.metrics.0.scrape.errors")):
        write_config(tmp_path, scrape_table("x", "http://h/m").replace("=~", "~"))
    with pytest.raises(ConfigError, match=re.escape("telemetry.metrics.0")):
        write_config(tmp_path, '[[telemetry.metrics]]\nname = "x"\nkind = "pull"\nurl = "http://h"')
    with pytest.raises(ConfigError, match="at least one query"):
        write_config(tmp_path, query_table("x", "http://h", queries="[telemetry.metrics.queries]"))
    with pytest.raises(ConfigError, match="url"):
        write_config(tmp_path, scrape_table("x", "file:///etc/passwd"))


def test_query_gauges_must_be_watched_and_watched_gauges_read(tmp_path: Path) -> None:
    gauge = '[[telemetry.metrics.gauges]]\nname = "rss_bytes"\nquery = "up"\n'
    with pytest.raises(ConfigError) as unwatched:
        write_config(tmp_path, query_table("x", "http://h", queries=gauge))
    assert "telemetry.metrics.0.gauges.0.name" in str(unwatched.value)
    assert "no component watches a gauge named 'rss_bytes'" in str(unwatched.value)
    assert str(tmp_path / "selfheal.toml") in str(unwatched.value)

    watch = '[[components.api.gauges]]\nname = "rss_bytes"\nlimit = 1e9\n'
    with pytest.raises(ConfigError) as unread:
        write_config(tmp_path, query_table("x", "http://h") + watch)
    assert "components.api.gauges.0" in str(unread.value)
    assert "no selector and no query source reads it" in str(unread.value)

    with pytest.raises(ConfigError, match="query"):
        write_config(
            tmp_path, query_table("x", "http://h", queries=gauge.replace("up", "")) + watch
        )
    with pytest.raises(ConfigError, match="repeated: rss_bytes"):
        write_config(tmp_path, query_table("x", "http://h", queries=gauge + gauge) + watch)

    settings = write_config(tmp_path, query_table("x", "http://h", queries=gauge) + watch)
    (source,) = settings.telemetry.metrics
    assert not source.maps_requests and settings.components["api"].gauges[0].selector is None


# --- against a real Prometheus server -------------------------------------------------------


@pytest.fixture(scope="session")
def live_endpoint() -> Iterator[Endpoint]:
    started = time.time()
    served = Endpoint(lambda path, form: (200, live_exposition(started), 0.0))
    yield served
    served.close()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, live_endpoint: Endpoint) -> Iterator[str]:
    """A real Prometheus server on 127.0.0.1 scraping ``live_endpoint`` every second."""
    directory = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    target = f"127.0.0.1:{live_endpoint.port}"
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(directory), str(port), target],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"cannot start Prometheus: {started.stderr.strip()}")
    yield f"http://127.0.0.1:{port}"
    subprocess.run(
        ["bash", str(SCRIPT), "stop", str(directory)], capture_output=True, timeout=60, check=False
    )


def test_queries_against_a_real_prometheus_land_in_windows(
    tmp_path: Path, prometheus: str, live_endpoint: Endpoint
) -> None:
    # The same endpoint is scraped directly too, as component "scraped": several
    # sources in one poll, each with its own cursor, and two computations to compare.
    scrape = scrape_table(
        "direct", live_endpoint.url + "/metrics", component_label='"none"', component='"scraped"'
    )
    settings = write_config(tmp_path, query_table("prom", prometheus) + scrape, window_s=4.0)
    db = open_database(settings.agent.data_dir / "selfheal.db")

    deadline = time.monotonic() + 40
    found: list[WindowRow] = []
    while time.monotonic() < deadline:
        report = poll_sources(settings, db, datetime.now(UTC))
        assert report.errors == {}
        found = [w for w in windows(db) if w.component == "checkout" and w.p95 is not None]
        if len(found) >= 2:
            break
        time.sleep(0.5)
    assert len(found) >= 2, f"Prometheus gave no full window in time: {windows(db)}"

    window = found[-1]  # the first may have started before Prometheus's first scrape
    assert window.end - window.start == timedelta(seconds=4)
    assert window.p50 == pytest.approx(P50_MS, rel=0.05)
    assert window.p95 == pytest.approx(P95_MS, rel=0.05)
    assert window.p99 == pytest.approx(P99_MS, rel=0.05)
    assert window.error_rate == pytest.approx(0.05, rel=0.05)
    assert window.count == pytest.approx(400, rel=0.15)
    assert window.errors == pytest.approx(20, abs=3)

    scraped = [w for w in windows(db) if w.component == "scraped"]
    assert scraped, "the direct scrape wrote no window"
    assert scraped[-1].p95 == pytest.approx(P95_MS, rel=0.02)
    assert scraped[-1].error_rate == pytest.approx(0.05, rel=0.05)
    keys = set(db.query(window_store.cursors))
    assert keys == {f"prom:{prometheus}", f"direct:{live_endpoint.url}/metrics"}
    db.dispose()


LEAKING_RSS = """
backfill_windows = 20

[[telemetry.metrics.gauges]]
name = "rss_bytes"
query = 'max by (component) (process_resident_memory_bytes)'

[[components.checkout.gauges]]
name = "rss_bytes"
limit = 1e9
min_windows = 6
lookback_windows = 30
"""


def test_gauges_queried_from_a_real_prometheus_land_in_windows_and_a_rise_opens_a_leak(
    tmp_path: Path, prometheus: str
) -> None:
    settings = write_config(
        tmp_path, query_table("prom", prometheus, queries=LEAKING_RSS), window_s=2.0
    )
    db = open_database(settings.agent.data_dir / "selfheal.db")

    deadline = time.monotonic() + 60
    found: list[WindowRow] = []
    while time.monotonic() < deadline and len(found) < 8:
        now = datetime.now(UTC)
        report = poll_sources(settings, db, now)
        assert report.errors == {}
        db.transact(partial(close_due_windows, settings=settings, now=now))
        found = [w for w in windows(db) if "rss_bytes" in w.gauges]
        time.sleep(0.5)
    assert len(found) >= 8, f"Prometheus gave too few gauge windows in time: {windows(db)}"

    first, last = found[0], found[-1]
    assert all(w.closed and w.count == 0 for w in found), "gauges alone measure no requests"
    slope = (last.gauges["rss_bytes"] - first.gauges["rss_bytes"]) / (
        last.end - first.end
    ).total_seconds()
    assert slope == pytest.approx(RSS_PER_S, rel=0.25)

    db.transact(lambda s: detect_beats.evaluate(s, settings, datetime.now(UTC)))
    anomalies = db.query(lambda s: repo.open_anomalies(s, "checkout"))
    leaks = [a for a in anomalies if a.category == "memory_leak"]
    assert [(a.metric, a.detector) for a in leaks] == [("rss_bytes", "trend")]
    assert leaks[0].threshold == 1e9
    assert leaks[0].evidence["slope_per_hour"] == pytest.approx(RSS_PER_S * 3600, rel=0.25)
    db.dispose()


def test_the_script_refuses_bad_arguments_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "start", str(tmp_path), "not-a-port"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "PORT must be a number" in result.stderr
