"""Leak detection: watched gauges reach windows, and a rise towards a limit is judged a memory leak.

The judgement itself is checked on generated series; the gauges on a real
HTTP endpoint on 127.0.0.1 scraped into a real SQLite data directory, merged
into windows a real log file wrote, and read back from a file made before
the column existed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from agent.settings import ConfigError, load_settings
from states.detect import leaks
from states.detect.policies import GaugeWatch, LogDetection
from states.settings import Settings
from states.telemetry.ingest import close_due_windows, poll_sources
from states.telemetry.metric_windows import MetricWindow
from storage import window_store
from storage.db import Database, open_database
from storage.tables import WindowRow
from tests.operator_support import append, log_line
from tests.support.cli import run_cli
from tests.support.daemon import PROJECT_ROOT
from tests.support.http_endpoint import Endpoint, serving_page

MB = 1024.0 * 1024.0
MINUTE = 60.0
WATCH = GaugeWatch(name="rss_bytes", selector="process_resident_memory_bytes", limit=1024 * MB)


def series(
    values: list[float] | np.ndarray, start: float = 1_772_000_000.0
) -> list[tuple[float, float]]:
    return [(start + i * MINUTE, float(v)) for i, v in enumerate(values)]


def leaking(
    points: int, per_minute_mb: float, *, flat: int = 0, seed: int = 3, noise_mb: float = 2.0
) -> list[tuple[float, float]]:
    """``flat`` minutes at 400 MB, then a rise of ``per_minute_mb`` a minute, with noise."""
    rng = np.random.default_rng(seed)
    level = [400.0 * MB] * flat + [400.0 * MB + per_minute_mb * MB * i for i in range(points)]
    return series(np.asarray(level) + rng.normal(0.0, noise_mb * MB, len(level)))


# --- judging a gauge's windows -------------------------------------------------------------------


def test_a_steady_rise_towards_the_limit_is_a_memory_leak_with_its_evidence() -> None:
    points = leaking(60, per_minute_mb=2.0)  # 518 MB now, 1 GiB in about 4 hours

    verdict = leaks.judge_gauge("catalog", WATCH, points)

    assert verdict is not None and verdict.finding is not None
    finding = verdict.finding
    assert (finding.category, finding.detector, finding.metric) == (
        "memory_leak",
        "trend",
        "rss_bytes",
    )
    assert finding.fingerprint == "catalog:rss_bytes"
    evidence = finding.evidence
    assert evidence["slope_per_hour"] == pytest.approx(120 * MB, rel=0.05)
    assert evidence["p_value"] < 1e-9 and finding.score > 0.999
    assert (evidence["current"], evidence["limit"]) == (points[-1][1], 1024 * MB)
    hours_left = (1024 * MB - points[-1][1]) / (120 * MB)
    assert evidence["time_to_limit_s"] == pytest.approx(hours_left * 3600, rel=0.1)
    assert datetime.fromisoformat(evidence["projected_at"]) > datetime.fromtimestamp(
        points[-1][0], UTC
    )
    assert finding.severity == "major", "the limit is between one and six hours away"


def test_a_flat_noisy_gauge_is_healthy_whatever_the_noise() -> None:
    for seed in range(25):
        rng = np.random.default_rng(seed)
        noisy = series(400 * MB + rng.normal(0.0, 20 * MB, 120))  # 5 % noise, 120 windows

        verdict = leaks.judge_gauge("catalog", WATCH, noisy)

        assert verdict is not None and verdict.finding is None, f"seed {seed}"


def test_a_rise_that_reaches_the_limit_only_after_the_horizon_is_not_an_anomaly() -> None:
    slow = leaking(120, per_minute_mb=0.2)  # 12 MB an hour: about two days to 1 GiB

    verdict = leaks.judge_gauge("catalog", WATCH, slow)

    assert verdict is not None and verdict.finding is None
    week = WATCH.model_copy(update={"horizon_s": 7 * 86400.0})
    found = leaks.judge_gauge("catalog", week, slow)
    assert found is not None and found.finding is not None
    assert found.finding.severity == "minor"


def test_fewer_points_than_min_windows_are_not_judged() -> None:
    assert leaks.judge_gauge("catalog", WATCH, leaking(19, per_minute_mb=5.0)) is None
    assert leaks.judge_gauge("catalog", WATCH, leaking(20, per_minute_mb=5.0)) is not None


def test_the_fit_starts_after_a_restart_so_a_restarted_fixed_service_is_healthy() -> None:
    rose = leaking(60, per_minute_mb=4.0)
    restarted = [(t + 60 * MINUTE, v) for t, v in leaking(30, per_minute_mb=0.0, seed=5)]

    verdict = leaks.judge_gauge("catalog", WATCH, rose + restarted)

    assert verdict is not None and verdict.finding is None
    assert leaks.since_last_reset(rose + restarted, 0.25) == restarted


def test_a_leak_that_goes_on_after_a_restart_is_still_found() -> None:
    rose = leaking(60, per_minute_mb=4.0)
    again = [(t + 60 * MINUTE, v) for t, v in leaking(30, per_minute_mb=4.0, seed=5)]

    verdict = leaks.judge_gauge("catalog", WATCH, rose + again)

    assert verdict is not None and verdict.finding is not None
    assert verdict.finding.evidence["points"] == 30


def test_the_onset_is_where_the_rise_began_not_where_it_became_significant() -> None:
    points = leaking(30, per_minute_mb=3.0, flat=60)

    verdict = leaks.judge_gauge("catalog", WATCH, points)

    assert verdict is not None and verdict.finding is not None
    began = datetime.fromtimestamp(points[60][0], UTC)
    assert verdict.finding.onset is not None
    assert abs(verdict.finding.onset - began) <= timedelta(minutes=2)
    assert verdict.finding.baseline == pytest.approx(400 * MB, rel=0.01)


@pytest.mark.parametrize(
    ("per_minute_mb", "severity"),
    [(20.0, "critical"), (4.0, "major"), (0.6, "minor")],
)
def test_severity_follows_the_time_left_before_the_limit(
    per_minute_mb: float, severity: str
) -> None:
    verdict = leaks.judge_gauge("catalog", WATCH, leaking(30, per_minute_mb=per_minute_mb))

    assert verdict is not None and verdict.finding is not None
    assert verdict.finding.severity == severity


def test_a_gauge_already_past_its_limit_and_rising_is_critical() -> None:
    over = [(t, v + 700 * MB) for t, v in leaking(30, per_minute_mb=1.0)]

    verdict = leaks.judge_gauge("catalog", WATCH, over)

    assert verdict is not None and verdict.finding is not None
    assert verdict.finding.evidence["time_to_limit_s"] == 0.0
    assert verdict.finding.severity == "critical"


# --- gauges reach windows ------------------------------------------------------------------------

T0 = datetime(2026, 11, 24, 7, 30, 5, tzinfo=UTC)


def rss_page(*values: tuple[str, float]) -> str:
    lines = [
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
    ]
    lines += [
        f'process_resident_memory_bytes{{component="catalog",instance="{instance}"}} {value}'
        for instance, value in values
    ]
    lines += ["# TYPE queue_depth gauge", 'queue_depth{component="catalog"} 3']
    return "\n".join(lines) + "\n"


def gauge_config(
    root: Path, endpoint: Endpoint, *, logs: bool = False, extra: str = ""
) -> Settings:
    source = (
        f'[[telemetry.sources]]\nname = "app"\npaths = ["{root}/logs/*.log"]\nformat = "json"\n'
        if logs
        else ""
    )
    path = root / "selfheal.toml"
    path.write_text(
        f"""
[agent]
data_dir = "data"
[telemetry]
window_s = 60.0
lateness_s = 5.0
{source}
[[telemetry.metrics]]
name = "proc"
kind = "scrape"
url = "{endpoint.url}/metrics"
timeout_s = 2.0
instance_label = "instance"
{extra}
[[components.catalog.gauges]]
name = "rss_bytes"
selector = "process_resident_memory_bytes"
limit = 1073741824
[[components.catalog.gauges]]
name = "queue"
selector = "queue_depth"
limit = 100
[deploy]
kind = "command"
[deploy.command]
targets = ["t1"]
deploy = ["true"]
version = ["echo", "abc1234"]
"""
    )
    return load_settings(path)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = serving_page()
    yield served
    served.close()


def lines(start: datetime, seconds: Iterable[int]) -> str:
    return "".join(log_line(start + timedelta(seconds=s)) + "\n" for s in seconds)


def windows(db: Database, instance: str | None = "") -> list[WindowRow]:
    return db.query(
        lambda s: window_store.component_windows(s, "catalog", instance=instance, closed_only=False)
    )


def test_a_scrape_keeps_the_last_value_of_each_watched_gauge_in_its_window(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    settings = gauge_config(tmp_path, endpoint)
    db = open_database(settings.agent.data_dir / "selfheal.db")
    for seconds, a, b in ((0, 100.0, 300.0), (20, 110.0, 290.0), (40, 120.0, 280.0)):
        endpoint.page["text"] = rss_page(("a", a), ("b", b))
        poll_sources(settings, db, T0 + timedelta(seconds=seconds))
    assert windows(db) == [], "a window is written by the first scrape after its end"

    endpoint.page["text"] = rss_page(("a", 500.0), ("b", 100.0))
    report = poll_sources(settings, db, T0 + timedelta(seconds=60))

    assert report.errors == {}
    by_instance = {w.instance: w.gauges for w in windows(db, instance=None)}
    assert by_instance == {
        "": {"rss_bytes": 280.0, "queue": 3.0},  # the largest series of the last scrape
        "a": {"rss_bytes": 120.0},
        "b": {"rss_bytes": 280.0},
    }
    [whole] = windows(db)
    assert whole.start == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert not whole.closed, "a source without requests leaves the window to close as logs do"
    db.dispose()


def test_gauges_join_the_window_a_log_source_wrote_for_the_same_component(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    settings = gauge_config(tmp_path, endpoint, logs=True)
    log = tmp_path / "logs" / "app.log"
    db = open_database(settings.agent.data_dir / "selfheal.db")
    start = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    endpoint.page["text"] = rss_page(("a", 200.0 * MB))
    append(log, lines(start, range(6, 30, 2)))
    poll_sources(settings, db, T0 + timedelta(seconds=25))
    append(log, lines(start, range(30, 60, 2)))
    endpoint.page["text"] = rss_page(("a", 210.0 * MB))
    report = poll_sources(settings, db, T0 + timedelta(seconds=58))
    closed = db.transact(lambda s: close_due_windows(s, settings, start + timedelta(seconds=66)))

    [window] = windows(db)
    assert closed >= 1 and window.closed
    assert (window.count, window.gauges["rss_bytes"]) == (27, 200.0 * MB)
    assert report.rejected.get("late", 0) == 0
    assert db.query(window_store.cursors)[f"proc:{endpoint.url}/metrics"].rejected == {}
    db.dispose()


def test_a_scrape_source_that_maps_requests_still_counts_a_window_another_source_wrote(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    extra = 'requests = "http_requests_total"\ncomponent = "catalog"\n'
    settings = gauge_config(tmp_path, endpoint, logs=True, extra=extra)
    log = tmp_path / "logs" / "app.log"
    db = open_database(settings.agent.data_dir / "selfheal.db")
    start = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    page = rss_page(("a", 5.0)) + "http_requests_total 10\n"
    endpoint.page["text"] = page
    append(log, lines(start, [10]))
    poll_sources(settings, db, T0)
    endpoint.page["text"] = page.replace("http_requests_total 10", "http_requests_total 20")
    report = poll_sources(settings, db, T0 + timedelta(seconds=56))

    [window] = windows(db)
    assert (window.count, window.gauges["rss_bytes"]) == (1, 5.0), "the log's requests stay"
    assert report.errors == {}
    cursor = db.query(window_store.cursors)[f"proc:{endpoint.url}/metrics"]
    assert cursor.rejected == {"window_exists": 1}
    db.dispose()


def test_a_pending_window_stored_before_gauges_reads_back() -> None:
    old = [12.0, 1.0, [["0.1", 3.0], ["inf", 12.0]]]

    window = MetricWindow.from_json(old)

    assert (window.count, window.errors, window.gauges) == (12.0, 1.0, {})
    assert window.to_json() == [12.0, 1.0, [["0.1", 3.0], ["inf", 12.0]]]
    window.gauges["rss_bytes"] = 7.0
    assert MetricWindow.from_json(window.to_json()).gauges == {"rss_bytes": 7.0}


def test_a_data_directory_from_before_gauges_gains_the_column_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    open_database(path).dispose()
    with sqlite3.connect(path) as conn:  # as the release before gauges (and operations) wrote it
        conn.execute("ALTER TABLE metric_window DROP COLUMN gauges")
        conn.execute("ALTER TABLE metric_window DROP COLUMN operations")
        conn.execute(
            "INSERT INTO metric_window (component, instance, start, end, count, errors, error_rate,"
            " closed, evaluated, anomalous, samples, versions, frames, sketch, templates,"
            " new_templates) VALUES ('catalog', '', '2026-03-01 11:40:00.000000',"
            " '2026-03-01 11:41:00.000000', 3, 0, 0.0, 1, 0, 0, '[]', '{}', '[]', '{}', '{}', '[]')"
        )
    conn.close()

    db = open_database(path)

    [window] = db.query(lambda s: window_store.component_windows(s, "catalog"))
    assert (window.count, window.gauges, window.operations) == (3, {}, {})
    db.dispose()


# --- configuration -------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "selfheal.toml"
    path.write_text(
        text + '\n[deploy]\nkind = "command"\n[deploy.command]\ntargets = ["t1"]\n'
        'deploy = ["true"]\nversion = ["true"]\n'
    )
    return path


def problem(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return str(raised.value)


def test_a_gauge_without_a_limit_is_refused_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[[components.catalog.gauges]]\nname = "rss"\nselector = "rss_bytes"\n')
    message = problem(path)
    assert str(path) in message
    assert "key 'components.catalog.gauges.0.limit'" in message and "Field required" in message


def test_a_gauge_with_a_bad_selector_or_lookback_is_refused_by_key(tmp_path: Path) -> None:
    bad = '[[components.catalog.gauges]]\nname = "rss"\nselector = "rss{a=}"\nlimit = 1.0\n'
    assert "key 'components.catalog.gauges.0.selector'" in problem(write(tmp_path, bad))
    short = (
        '[[components.catalog.gauges]]\nname = "rss"\nselector = "rss"\nlimit = 1.0\n'
        "lookback_windows = 10\nmin_windows = 20\n"
    )
    assert "min_windows must not exceed lookback_windows" in problem(write(tmp_path, short))
    twice = (
        '[[components.catalog.gauges]]\nname = "rss"\nselector = "a"\nlimit = 1.0\n'
        '[[components.catalog.gauges]]\nname = "rss"\nselector = "b"\nlimit = 1.0\n'
    )
    assert "repeated: rss" in problem(write(tmp_path, twice))


def test_a_scrape_source_that_measures_nothing_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[telemetry.metrics]]\nname = "proc"\nkind = "scrape"\nurl = "http://h/m"\n'
    )
    message = problem(path)
    assert "telemetry.metrics.0 ('proc')" in message
    assert "needs 'requests' or 'latency', or a component with gauges" in message


def test_the_documented_configuration_passes_check_with_its_detector_keys() -> None:
    documented = PROJECT_ROOT / "config.toml"

    done = run_cli(documented, "--data-dir", "/nonexistent/selfheal-check", "check", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    catalog = load_settings(documented).components["catalog"]
    assert catalog.logs == LogDetection(), "the documented log keys are the defaults"
    [rss] = catalog.gauges
    defaults = GaugeWatch(name=rss.name, selector=rss.selector, limit=rss.limit)
    assert rss == defaults, "the documented gauge keys other than the example's are the defaults"
