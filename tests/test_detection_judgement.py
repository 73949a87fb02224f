"""Judging windows (pure) and keeping one anomaly per fingerprint across windows (real database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from states.deploy.settings import CommandDeployerSettings, DeploySettings
from states.detect import judgement
from states.detect.beats import evaluate
from states.detect.judgement import Finding, Objectives, WindowStats, judge, severity_of
from states.detect.settings import ComponentSettings, DetectSettings
from states.settings import Settings
from storage import repository as repo
from storage import window_store
from storage.db import Database, open_database
from storage.tables import AnomalyRow, CycleRow, WindowRow

SLO_ONLY = Objectives(slo_p95_ms=200.0, slo_error_rate=0.05, deviation_factor=2.0, min_baseline=5)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=60)


def stats(p95: float | None = 100.0, error_rate: float = 0.0, count: int = 100) -> WindowStats:
    return WindowStats("api", count, error_rate, p95)


# --- severity table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("excess", "severity"),
    [
        (1.0001, "minor"),
        (1.4999, "minor"),
        (1.5, "major"),
        (2.9999, "major"),
        (3.0, "critical"),
        (50.0, "critical"),
    ],
)
def test_severity_is_read_from_the_table_at_its_boundaries(excess: float, severity: str) -> None:
    assert severity_of(excess) == severity


@pytest.mark.parametrize(
    ("excess", "exhausted_in_s", "severity"),
    [
        (0.5, 86400.0, "minor"),
        (0.5, 6 * 3600.0, "major"),
        (0.5, 3600.0, "critical"),
        (0.5, 0.0, "critical"),
        (1.6, 86400.0, "major"),  # the worse of the two measures wins
        (3.2, 86400.0, "critical"),
    ],
)
def test_the_table_also_reads_how_soon_a_resource_runs_out(
    excess: float, exhausted_in_s: float, severity: str
) -> None:
    assert severity_of(excess, exhausted_in_s) == severity


def test_a_finding_against_a_zero_threshold_is_critical() -> None:
    finding = Finding("api", "error_rate", "errors", "slo", 0.01, 0.0, None)
    assert finding.excess == float("inf")
    assert finding.severity == "critical"


# --- SLO breaches ----------------------------------------------------------------------------------


def test_a_p95_over_its_objective_is_an_slo_finding() -> None:
    [finding] = judge(stats(p95=300.0), SLO_ONLY, [])

    assert (finding.metric, finding.category, finding.detector) == ("p95_ms", "latency", "slo")
    assert (finding.value, finding.threshold) == (300.0, 200.0)
    assert finding.severity == "major"
    assert finding.fingerprint == "api:p95_ms"


def test_a_p95_exactly_at_its_objective_is_not_a_breach() -> None:
    assert judge(stats(p95=200.0), SLO_ONLY, []) == []


def test_an_error_rate_over_its_objective_is_an_errors_finding() -> None:
    [finding] = judge(stats(p95=None, error_rate=0.2), SLO_ONLY, [])

    assert (finding.metric, finding.category, finding.detector) == ("error_rate", "errors", "slo")
    assert finding.baseline is None
    assert finding.severity == "critical"
    assert finding.fingerprint == "api:error_rate"


def test_latency_and_errors_breached_together_are_two_findings() -> None:
    findings = judge(stats(p95=250.0, error_rate=0.06), SLO_ONLY, [])
    assert sorted(f.metric for f in findings) == ["error_rate", "p95_ms"]


def test_a_component_without_objectives_is_only_judged_against_its_baseline() -> None:
    none = Objectives(None, None, deviation_factor=2.0, min_baseline=1)
    assert judge(stats(p95=10_000.0, error_rate=0.9), none, []) == []


# --- baseline deviation ----------------------------------------------------------------------------


def test_a_p95_far_above_the_baseline_median_is_a_baseline_finding() -> None:
    objectives = Objectives(None, None, deviation_factor=2.0, min_baseline=5)
    [finding] = judge(stats(p95=130.0), objectives, [50.0, 60.0, 40.0, 55.0, 900.0])

    assert finding.detector == "baseline"
    assert finding.baseline == 55.0, "the median ignores the stray slow window"
    assert finding.threshold == 110.0


def test_a_baseline_shorter_than_the_minimum_is_not_used() -> None:
    objectives = Objectives(None, None, deviation_factor=2.0, min_baseline=5)
    assert judge(stats(p95=500.0), objectives, [50.0] * 4) == []
    assert len(judge(stats(p95=500.0), objectives, [50.0] * 5)) == 1


def test_one_metric_gives_one_finding_the_most_severe_of_slo_and_baseline() -> None:
    # SLO excess 300/200 = 1.5; baseline excess 300/(2 x 50) = 3.0.
    [finding] = judge(stats(p95=300.0), SLO_ONLY, [50.0] * 5)
    assert (finding.detector, finding.severity) == ("baseline", "critical")

    # SLO excess 300/100 = 3.0; baseline excess 300/(2 x 140) = 1.07.
    tight = Objectives(100.0, None, deviation_factor=2.0, min_baseline=5)
    [finding] = judge(stats(p95=300.0), tight, [140.0] * 5)
    assert (finding.detector, finding.severity, finding.baseline) == ("slo", "critical", 140.0)


def test_the_baseline_of_no_healthy_windows_is_unknown() -> None:
    assert judgement.baseline_of([]) is None


# --- evaluate over stored windows ---------------------------------------------------------------------


def detect_settings(**detect: Any) -> Settings:
    return Settings(
        components={"api": ComponentSettings(slo_p95_ms=200.0, slo_error_rate=0.05)},
        detect=DetectSettings(persist_windows=3, clear_windows=2, **detect),
        deploy=DeploySettings(
            kind="command",
            command=CommandDeployerSettings(targets=["t1"], deploy=["true"], version=["true"]),
        ),
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "selfheal.db")
    yield database
    database.dispose()


class Feed:
    """Adds one closed window at a time and runs detection on it, as the agent would."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.start = T0

    def window(self, p95: float, error_rate: float = 0.0, count: int = 100) -> dict[str, Any]:
        row = WindowRow(
            component="api",
            start=self.start,
            end=self.start + WINDOW,
            count=count,
            errors=round(count * error_rate),
            error_rate=error_rate,
            p95=p95,
            closed=True,
        )
        self.start += WINDOW
        self.db.transact(lambda s: s.add(row))
        return self.db.transact(lambda s: evaluate(s, self.settings))


def all_anomalies(db: Database) -> list[AnomalyRow]:
    return db.query(lambda s: list(s.exec(select(AnomalyRow).order_by(col(AnomalyRow.id)))))


@pytest.fixture
def feed(db: Database) -> Feed:
    return Feed(db, detect_settings())


SLOW, FAST = 400.0, 100.0


def test_an_anomaly_becomes_actionable_only_after_persisting_for_persist_windows(
    feed: Feed,
) -> None:
    actionable = []
    for _ in range(3):
        feed.window(SLOW)
        [anomaly] = all_anomalies(feed.db)
        actionable.append(anomaly.actionable)

    assert actionable == [False, False, True]
    assert anomaly.consecutive == 3
    assert anomaly.onset == T0


def test_many_anomalous_windows_keep_one_open_anomaly_per_fingerprint(feed: Feed) -> None:
    for _ in range(6):
        feed.window(SLOW, error_rate=0.2)

    anomalies = all_anomalies(feed.db)
    assert sorted(a.fingerprint for a in anomalies) == ["api:error_rate", "api:p95_ms"]
    assert all(a.status == "open" and a.consecutive == 6 for a in anomalies)
    latency = next(a for a in anomalies if a.metric == "p95_ms")
    assert latency.last_seen == T0 + 5 * WINDOW


def test_an_open_anomaly_keeps_its_worst_severity(feed: Feed) -> None:
    feed.window(700.0)  # 3.5 x SLO: critical
    feed.window(300.0)  # 1.5 x SLO: major

    [anomaly] = all_anomalies(feed.db)
    assert anomaly.severity == "critical"
    assert anomaly.value == 300.0, "the latest value is still recorded"


def test_an_anomaly_closes_only_after_clear_windows_healthy_windows(feed: Feed) -> None:
    for _ in range(3):
        feed.window(SLOW)
    feed.window(FAST)
    [anomaly] = all_anomalies(feed.db)
    assert (anomaly.status, anomaly.healthy_streak) == ("open", 1)

    feed.window(FAST)

    [anomaly] = all_anomalies(feed.db)
    assert anomaly.status == "closed"
    assert anomaly.closed_at == T0 + 5 * WINDOW


def test_a_flapping_metric_stays_one_anomaly(feed: Feed) -> None:
    for p95 in (SLOW, FAST, SLOW, FAST, SLOW):
        feed.window(p95)

    [anomaly] = all_anomalies(feed.db)
    assert anomaly.status == "open"
    assert anomaly.healthy_streak == 0, "an anomalous window resets the healthy streak"


def test_a_breach_soon_after_an_anomaly_closed_reopens_it_and_it_must_persist_again(
    feed: Feed,
) -> None:
    for p95 in (SLOW, SLOW, SLOW, FAST, FAST):
        feed.window(p95)
    [closed] = all_anomalies(feed.db)
    assert (closed.status, closed.actionable) == ("closed", True)

    feed.window(SLOW)

    [anomaly] = all_anomalies(feed.db)
    assert (anomaly.id, anomaly.status, anomaly.closed_at) == (closed.id, "open", None)
    assert anomaly.onset == T0, "a re-opened anomaly keeps its onset"
    assert (anomaly.consecutive, anomaly.actionable) == (1, False)
    assert anomaly.evidence["reopened"] == 1
    feed.window(SLOW)
    feed.window(SLOW)
    [anomaly] = all_anomalies(feed.db)
    assert (anomaly.consecutive, anomaly.actionable) == (3, True)


def test_a_breach_long_after_an_anomaly_closed_opens_a_new_one(db: Database) -> None:
    feed = Feed(db, detect_settings(reopen_windows=2))
    for p95 in (SLOW, FAST, FAST, FAST, FAST, FAST, SLOW):  # closed at T0 + 3 windows
        feed.window(p95)

    first, second = all_anomalies(feed.db)
    assert (first.status, second.status) == ("closed", "open")
    assert second.onset == T0 + 6 * WINDOW
    assert not second.actionable


def test_an_anomaly_of_a_running_cycle_reopens_into_that_cycle_however_late(
    db: Database,
) -> None:
    feed = Feed(db, detect_settings(reopen_windows=0))
    for _ in range(3):
        feed.window(SLOW)

    def attach(session: repo.Session) -> None:
        session.add(CycleRow(id="c1", opened_at=T0, component="api"))
        [anomaly] = repo.open_anomalies(session)
        anomaly.cycle_id = "c1"
        session.add(anomaly)

    feed.db.transact(attach)
    for p95 in (FAST,) * 6 + (SLOW,):
        feed.window(p95)

    [anomaly] = all_anomalies(feed.db)
    assert (anomaly.status, anomaly.cycle_id) == ("open", "c1")


def test_an_anomaly_of_a_finished_cycle_does_not_reopen(db: Database) -> None:
    feed = Feed(db, detect_settings())
    for _ in range(3):
        feed.window(SLOW)
    for _ in range(2):
        feed.window(FAST)
    closed_at = feed.start

    def finish(session: repo.Session) -> None:
        session.add(
            CycleRow(
                id="c1", opened_at=T0, closed_at=closed_at, outcome="resolved", component="api"
            )
        )
        [anomaly] = list(session.exec(select(AnomalyRow)))
        anomaly.cycle_id = "c1"
        session.add(anomaly)

    feed.db.transact(finish)
    feed.window(SLOW)

    first, second = all_anomalies(feed.db)
    assert (first.status, first.cycle_id) == ("closed", "c1")
    assert (second.status, second.cycle_id, second.onset) == ("open", None, closed_at)


def test_windows_with_too_few_requests_are_not_judged(feed: Feed) -> None:
    result = feed.window(SLOW, count=9)

    assert result == {"judged": 0, "anomalous": 0, "attributed_to_last_cycle": 0}
    assert all_anomalies(feed.db) == []
    stored = feed.db.query(lambda s: window_store.component_windows(s, "api"))
    assert [w.evaluated for w in stored] == [True]


def test_a_deviation_from_the_learned_baseline_needs_enough_healthy_windows(db: Database) -> None:
    feed = Feed(db, detect_settings(min_baseline_windows=5))
    for _ in range(4):
        feed.window(50.0)
    feed.window(150.0)  # under the 200 ms SLO, three times a baseline of only four windows
    assert all_anomalies(db) == []

    # The unjudged 150 ms window counts as healthy: median of [50, 50, 50, 50, 150] is 50.
    feed.window(150.0)
    [anomaly] = all_anomalies(db)
    assert (anomaly.detector, anomaly.baseline) == ("baseline", 50.0)


def test_windows_during_a_finished_cycle_are_attributed_to_it(feed: Feed) -> None:
    closed_at = T0 + 3 * WINDOW
    cycle = CycleRow(
        id="c1", opened_at=T0, closed_at=closed_at, outcome="resolved", component="api"
    )
    feed.db.transact(lambda s: s.add(cycle))
    rows = []
    for _ in range(3):
        row = WindowRow(
            component="api",
            start=feed.start,
            end=feed.start + WINDOW,
            count=100,
            p95=SLOW,
            closed=True,
        )
        rows.append(row)
        feed.start += WINDOW
    feed.db.transact(lambda s: s.add_all(rows))

    result = feed.db.transact(lambda s: evaluate(s, feed.settings))

    assert result == {"judged": 3, "anomalous": 3, "attributed_to_last_cycle": 3}
    assert all_anomalies(feed.db) == []

    feed.window(SLOW)  # ends after the cycle closed

    [anomaly] = all_anomalies(feed.db)
    assert anomaly.onset == closed_at
    assert anomaly.cycle_id is None
