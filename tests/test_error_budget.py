"""Error budgets from hourly totals: the same figures as summing every window, for a whole period.

Real SQLite files. The reference is the pure burn-rate policy over one bucket
per stored window (what detection and ``selfheal status`` computed by loading
every window of the period); the hourly totals must give exactly the same
reports on the same windows, keep counting after retention deleted windows,
survive a rolled-back close and reach data directories made before them.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlmodel import select

from agent import reports
from states.detect import burn_rate
from states.detect.beats import evaluate
from states.detect.budget import coverage_warnings, describe, policy_for, stored_report
from states.detect.burn_rate import Bucket, BurnRateReport
from states.detect.judgement import burn_finding
from states.facts import incident_candidate
from states.settings import Settings
from states.telemetry.ingest import apply_retention
from states.telemetry.window_rows import close_due_windows
from storage import budget_hours, window_store
from storage import repository as repo
from storage.budget_hours import BudgetHourRow
from storage.db import Database, open_database
from storage.tables import AnomalyRow, WindowRow
from tests.support.cli import run_cli
from tests.support.clocks import SteppedClock
from tests.support.daemon import Daemon

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def budget_settings(**telemetry: Any) -> Settings:
    return Settings.model_validate(
        {
            "telemetry": {"window_s": 60.0, **telemetry},
            "components": {"api": {"slo_error_rate": 0.01}},
            "detect": {"slo_period_s": 8 * 3600.0},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "data" / "selfheal.db")
    yield database
    database.dispose()


def window(
    start: datetime, width_s: float, count: int, errors: int, **fields: Any
) -> dict[str, Any]:
    """Column values of one window, closed unless ``closed=False``."""
    row = {
        "component": "api",
        "instance": "",
        "start": start,
        "end": start + timedelta(seconds=width_s),
        "count": count,
        "errors": errors,
        "error_rate": errors / count if count else 0.0,
        "closed": True,
    }
    return {**row, **fields}


def history(
    start: datetime, windows: int, width_s: float = 60.0, seed: int = 1
) -> list[dict[str, Any]]:
    """Closed windows of bursty traffic with gaps, plus instance windows and a few left open."""
    rng = random.Random(seed)
    rows = []
    for i in range(windows):
        if rng.random() < 0.1:
            continue  # no traffic in this window: no row
        at = start + timedelta(seconds=i * width_s)
        count = rng.randint(0, 400)
        errors = rng.randint(0, count) if rng.random() < 0.05 else rng.randint(0, count // 50)
        rows.append(window(at, width_s, count, errors, closed=rng.random() > 0.02))
        rows.append(window(at, width_s, count, count, instance="web-1"))
    return rows


def store(db: Database, rows: list[dict[str, Any]]) -> None:
    db.transact(lambda s: s.add_all([WindowRow(**row) for row in rows]))


def stored_windows(db: Database) -> list[WindowRow]:
    return db.query(lambda s: window_store.component_windows(s, "api"))


def reference_report(settings: Settings, windows: list[WindowRow], now: datetime) -> BurnRateReport:
    """The policy over one bucket per window, as budgets were computed from loaded windows."""
    policy = policy_for(settings, "api")
    assert policy is not None
    buckets = [
        Bucket(w.end.timestamp(), float(w.count - w.errors), float(w.count)) for w in windows
    ]
    return burn_rate.evaluate(policy, buckets, now.timestamp())


def totals(
    db: Database, after: datetime, until: datetime, widest_s: float = 60.0
) -> tuple[int, int]:
    return db.query(lambda s: budget_hours.request_totals(s, "api", after, until, widest_s))


def hours(db: Database) -> dict[datetime, tuple[int, int, int]]:
    rows = db.query(lambda s: list(s.exec(select(BudgetHourRow))))
    return {r.hour: (r.requests, r.errors, r.windows) for r in rows}


# --- which hour a window is summed in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "hour"),
    [
        (datetime(2026, 3, 1, 13, 0, tzinfo=UTC), datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        (datetime(2026, 3, 1, 13, 0, 0, 1, tzinfo=UTC), datetime(2026, 3, 1, 13, 0, tzinfo=UTC)),
        (datetime(2026, 3, 1, 13, 0, 0, 500, tzinfo=UTC), datetime(2026, 3, 1, 13, 0, tzinfo=UTC)),
        (
            datetime(2026, 3, 1, 12, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        ),
        (datetime(2026, 3, 1, 13, 1, tzinfo=UTC), datetime(2026, 3, 1, 13, 0, tzinfo=UTC)),
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), datetime(2026, 2, 28, 23, 0, tzinfo=UTC)),
    ],
)
def test_a_window_is_summed_in_the_hour_its_end_falls_in(
    db: Database, end: datetime, hour: datetime
) -> None:
    store(db, [window(end - timedelta(seconds=60), 60.0, 7, 2)])

    assert hours(db) == {hour: (7, 2, 1)}


# --- totals of a span ---------------------------------------------------------------------------


@pytest.mark.parametrize("width_s", [60.0, 90.0, 7.0])
def test_totals_of_any_span_equal_the_sum_over_its_windows(db: Database, width_s: float) -> None:
    count = int(5 * 3600 / width_s)
    store(db, history(T0 + timedelta(minutes=7), count, width_s))
    windows = stored_windows(db)
    rng = random.Random(width_s)
    edges = [T0 + timedelta(hours=h) for h in range(7)]
    spans = [(rng.choice(edges), rng.choice(edges)) for _ in range(30)]
    spans += [
        (
            T0 + timedelta(seconds=rng.uniform(0, 20_000)),
            T0 + timedelta(seconds=rng.uniform(0, 20_000)),
        )
        for _ in range(200)
    ]

    for after, until in spans:
        inside = [w for w in windows if after < w.end <= until]
        expected = (sum(w.count for w in inside), sum(w.errors for w in inside))
        assert totals(db, after, until, width_s) == expected, (after, until)


def test_a_span_with_no_windows_has_no_requests(db: Database) -> None:
    store(db, history(T0, 120))

    assert totals(db, T0 - 10 * HOUR, T0) == (0, 0)
    assert totals(db, T0 + HOUR, T0 + HOUR) == (0, 0)


# --- every way a window is closed is summed once --------------------------------------------------


def test_log_windows_closed_by_the_telemetry_beat_are_summed_once(db: Database) -> None:
    settings = budget_settings()
    store(
        db,
        [
            window(T0, 60.0, 50, 5, closed=False),
            window(T0, 60.0, 50, 50, instance="w", closed=False),
        ],
    )
    assert hours(db) == {}

    closed = db.transact(lambda s: close_due_windows(s, settings, T0 + HOUR))
    again = db.transact(lambda s: close_due_windows(s, settings, T0 + HOUR))

    assert (closed, again) == (2, 0)
    assert hours(db) == {T0: (50, 5, 1)}


def test_a_close_rolled_back_by_a_crash_adds_nothing_and_its_retry_adds_it_once(
    db: Database,
) -> None:
    settings = budget_settings()
    store(db, [window(T0, 60.0, 50, 5, closed=False)])

    def close_then_crash(session: repo.Session) -> None:
        close_due_windows(session, settings, T0 + HOUR)
        session.flush()
        raise RuntimeError("killed mid-transaction")

    with pytest.raises(RuntimeError):
        db.transact(close_then_crash)
    assert hours(db) == {}
    db.transact(lambda s: close_due_windows(s, settings, T0 + HOUR))

    assert hours(db) == {T0: (50, 5, 1)}


def test_windows_written_closed_or_closed_later_through_the_orm_are_summed(db: Database) -> None:
    metric = WindowRow(**window(T0, 60.0, 30, 3))
    later = WindowRow(**window(T0 + timedelta(minutes=1), 60.0, 20, 1, closed=False))
    db.transact(lambda s: s.add_all([metric, later]))
    assert hours(db) == {T0: (30, 3, 1)}

    def close(session: repo.Session) -> None:
        row = session.get(WindowRow, later.id)
        assert row is not None
        row.closed = True
        session.add(row)

    db.transact(close)

    assert hours(db) == {T0: (50, 4, 2)}


def test_a_closed_window_amended_moves_its_counts(db: Database) -> None:
    store(db, [window(T0 + timedelta(minutes=59), 60.0, 30, 3)])

    def amend(session: repo.Session) -> None:
        [row] = window_store.component_windows(session, "api")
        row.count, row.errors, row.end = 40, 10, T0 + 2 * HOUR
        session.add(row)

    db.transact(amend)

    assert hours(db) == {T0: (0, 0, 0), T0 + HOUR: (40, 10, 1)}


def test_merging_gauges_into_a_closed_window_changes_no_totals(db: Database) -> None:
    store(db, [window(T0, 60.0, 30, 3)])

    def merge(session: repo.Session) -> None:
        [row] = window_store.component_windows(session, "api")
        row.gauges = {"rss": 1.0}
        row.evaluated = True
        session.add(row)

    db.transact(merge)

    assert hours(db) == {T0: (30, 3, 1)}


# --- the same reports as summing every window -----------------------------------------------------


def test_budgets_at_every_window_end_equal_those_of_the_windows_themselves(db: Database) -> None:
    settings = budget_settings()
    store(db, history(T0, 20 * 60, seed=3))
    windows = stored_windows(db)
    moments = [w.end for w in windows[:: max(1, len(windows) // 150)]] + [windows[-1].end]

    for now in moments:
        expected = reference_report(settings, windows, now)
        assert (
            db.query(partial(stored_report, settings=settings, component="api", now=now))
            == expected
        ), now


def test_status_shows_the_budget_of_the_windows_themselves_between_window_ends(
    db: Database,
) -> None:
    settings = budget_settings()
    store(db, history(T0, 20 * 60, seed=4))
    windows = stored_windows(db)

    for now in (T0 + timedelta(hours=15, seconds=30.5), T0 + timedelta(hours=20, minutes=1)):
        shown = reports.status(db, settings, now)["components"]["api"]["error_budget"]
        assert shown == describe(reference_report(settings, windows, now))


def test_detection_counts_the_window_it_judges_once(db: Database) -> None:
    settings = budget_settings()
    rows = [window(T0 + timedelta(minutes=i), 60.0, 100, 5 + (i * 7) % 30) for i in range(90)]
    store(db, rows)

    db.transact(lambda s: evaluate(s, settings))

    windows = stored_windows(db)
    expected = burn_finding("api", reference_report(settings, windows, windows[-1].end))
    assert expected is not None
    burning = db.query(
        lambda s: s.exec(select(AnomalyRow).where(AnomalyRow.metric == "error_budget_burn")).one()
    )
    assert (burning.detector, burning.value) == (expected.detector, expected.value)


# --- the budget outlives window retention -------------------------------------------------------


def retention(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    ctx = SimpleNamespace(clock=SteppedClock(now), settings=settings, db=db)
    result = apply_retention(ctx)  # type: ignore[arg-type]
    assert result is not None
    return result.output


def test_the_budget_covers_its_whole_period_after_retention_deleted_its_windows(
    db: Database,
) -> None:
    settings = budget_settings(retention_s=3 * 3600.0)
    store(db, history(T0, 16 * 60, seed=5))
    now = T0 + timedelta(hours=16)
    expected = reference_report(settings, stored_windows(db), now)

    pruned = retention(db, settings, now)

    assert pruned["windows"] > 12 * 60
    assert min(w.start for w in stored_windows(db)) >= now - timedelta(hours=3)
    assert db.query(lambda s: stored_report(s, settings, "api", now)) == expected
    assert pruned["budget_hours"] == 8, "hours ending eight hours before now or earlier go"
    assert min(hours(db)) == now - timedelta(hours=8)


def test_the_oldest_partial_hour_of_the_period_counts_only_the_windows_still_kept(
    db: Database,
) -> None:
    settings = budget_settings(retention_s=3 * 3600.0)
    store(db, history(T0, 16 * 60, seed=6))
    windows = stored_windows(db)
    now = T0 + timedelta(hours=16, minutes=25)
    whole_hours_from = T0 + timedelta(hours=9)  # the period starts 35 minutes before

    retention(db, settings, now)

    counted = [w for w in windows if whole_hours_from < w.end <= now]
    expected = (sum(w.count for w in counted), sum(w.errors for w in counted))
    assert totals(db, now - timedelta(hours=8), now) == expected


# --- data directories made before the hourly totals ---------------------------------------------


def test_a_data_directory_from_before_gains_the_totals_of_the_windows_it_holds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "selfheal.db"
    database = open_database(path)
    store(database, history(T0, 600, seed=7))
    before = hours(database)
    database.dispose()
    with sqlite3.connect(path) as conn:  # the file as the release before the totals wrote it
        conn.execute("DROP TRIGGER budget_hour_window_inserted")
        conn.execute("DROP TRIGGER budget_hour_window_updated")
        conn.execute("DROP TABLE budget_hour")
    conn.close()

    reopened = open_database(path)
    assert hours(reopened) == before
    reopened.dispose()
    again = open_database(path)
    store(again, [window(T0 + 20 * HOUR, 60.0, 9, 1)])

    assert hours(again) == {**before, T0 + 20 * HOUR: (9, 1, 1)}
    again.dispose()


# --- configuration --------------------------------------------------------------------------------


def test_a_burn_window_longer_than_window_retention_is_named_with_both_keys() -> None:
    [warning] = coverage_warnings(budget_settings(retention_s=7200.0))

    assert "detect.burn_rate_pairs 'slow' long_s = 21600 s" in warning
    assert "telemetry.retention_s = 7200 s" in warning
    assert coverage_warnings(budget_settings()) == []


def test_a_period_longer_than_window_retention_is_no_warning() -> None:
    settings = budget_settings(retention_s=7 * 3600.0)

    assert settings.detect.slo_period_s > settings.telemetry.retention_s
    assert coverage_warnings(settings) == []


def short_retention_config(root: Path) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'[agent]\ndata_dir = "{root / "data"}"\n[telemetry]\nretention_s = 7200.0\n'
        '[deploy]\nkind = "command"\n'
        '[deploy.command]\ntargets = ["t1"]\ndeploy = ["true"]\nversion = ["true"]\n'
    )
    return config


def test_check_prints_the_warning(tmp_path: Path) -> None:
    done = run_cli(short_retention_config(tmp_path), "check")

    assert done.returncode == 0, done.stderr
    assert "warning: detect.burn_rate_pairs 'slow'" in done.stdout
    assert "telemetry.retention_s = 7200 s" in done.stdout


def test_the_daemon_logs_the_warning_when_it_starts(tmp_path: Path) -> None:
    daemon = Daemon(short_retention_config(tmp_path), tmp_path / "daemon.log").start()
    try:
        deadline = time.monotonic() + 60
        while not any(e.get("event") == "daemon started" for e in daemon.events()):
            assert daemon.running() and time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.2)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()

    [warning] = [e for e in daemon.events() if e.get("event") == "configuration"]
    assert warning["level"] == "warning"
    assert "detect.burn_rate_pairs 'slow'" in warning["problem"]
    assert "telemetry.retention_s = 7200 s" in warning["problem"]


# --- one severity table ---------------------------------------------------------------------------


def test_the_incident_is_the_worst_actionable_anomaly_then_the_oldest(db: Database) -> None:
    def anomaly(fingerprint: str, severity: str, onset_minutes: int) -> AnomalyRow:
        at = T0 + timedelta(minutes=onset_minutes)
        return AnomalyRow(
            fingerprint=fingerprint,
            component="api",
            metric=fingerprint,
            detector="slo",
            category="errors",
            severity=severity,
            actionable=True,
            onset=at,
            last_seen=at,
        )

    rows = [anomaly("a", "minor", 0), anomaly("b", "major", 5), anomaly("c", "critical", 9)]
    rows += [anomaly("d", "critical", 7), anomaly("e", "unheard-of", -5)]
    db.transact(lambda s: s.add_all(rows))

    order = []
    while (candidate := db.query(incident_candidate)) is not None:
        order.append(candidate.fingerprint)
        db.transact(partial(handled, anomaly_id=candidate.id))

    assert order == ["d", "c", "b", "a", "e"]


def handled(session: repo.Session, anomaly_id: int | None) -> None:
    row = session.get(AnomalyRow, anomaly_id)
    assert row is not None
    row.cycle_id = "handled"
    session.add(row)
