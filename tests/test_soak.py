"""Two thousand ticks later, memory and the data directory are as big as they were halfway.

The real engine runs in-process on generated telemetry with a clock the test
moves (``tests/support/soak.py``): 2,000 polls a minute apart (33 simulated
hours), a batch of requests every five polls, and a slow catalog every three
hours, so cycles open, close and, once older than a day and beyond
``agent.keep_cycles``, are pruned with their artifact directories. Windows
past ``telemetry.retention_s``, hourly budget totals past the SLO period and
idle poll transitions are dropped by the telemetry retention beat. The data
directory lives on tmpfs when there is one: a commit's fsync would dominate
the run time, and sizes, not speeds, are what is measured.
``benchmarks/reliability.py`` runs a longer soak.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from storage import repository as repo
from storage.db import open_database
from storage.retention import prune_cycles
from storage.tables import AnomalyRow, ArtifactRow, CycleRow, TransitionRow
from tests.support.soak import COMPONENTS, INSTANCES, SoakPlan, SoakReport, run_soak

PLAN = SoakPlan(ticks=2000)
SETTLED = 1500  # a day of cycles and four hours of windows have accumulated by then
SERIES = len(COMPONENTS) * (len(INSTANCES) + 1)  # per instance, and all instances together
CYCLES_PER_DAY = 24 * 3600 / PLAN.incident_every_s
MiB = 1024 * 1024


def _scratch() -> Iterator[Path]:
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="selfheal-soak-", dir=shm if shm.is_dir() else None))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def soak() -> Iterator[SoakReport]:
    for root in _scratch():
        yield run_soak(root, PLAN)


def test_the_soak_opened_closed_and_pruned_cycles(soak: SoakReport) -> None:
    hours = PLAN.ticks * PLAN.tick_s / 3600
    assert hours > 30
    assert soak.cycles_opened >= hours * 3600 / PLAN.incident_every_s - 1
    assert soak.pruned_cycles >= 2
    end = soak.samples[-1]
    assert end.rows["cycle"] == soak.cycles_opened - soak.pruned_cycles
    assert end.rows["cycle"] <= CYCLES_PER_DAY + PLAN.keep_cycles + 1
    assert end.cycle_dirs == end.rows["cycle"]


def test_database_size_stops_growing_once_retention_applies(soak: SoakReport) -> None:
    settled, end = soak.at(SETTLED), soak.samples[-1]
    assert end.db_bytes <= settled.db_bytes * 1.05
    assert max(s.db_bytes for s in soak.samples) < 4 * MiB
    assert max(s.wal_bytes for s in soak.samples) < 8 * MiB  # checkpoints keep the WAL in check


def test_rows_stay_within_bounds_set_by_retention_not_by_tick_count(soak: SoakReport) -> None:
    end = soak.samples[-1].rows
    windows_per_series = PLAN.retention_s / PLAN.window_s + 2
    assert end["metric_window"] <= SERIES * windows_per_series
    assert 0 < end["budget_hour"] <= len(COMPONENTS) * (PLAN.slo_period_s / 3600 + 2)
    assert end["transition"] <= 500 + end["cycle"] * 4  # agent.keep_idle_transitions default
    assert end["anomaly"] <= PLAN.keep_cycles + end["cycle"] + len(COMPONENTS)
    assert end["timer"] == end["beat_claim"] == 0
    settled = soak.at(SETTLED).rows
    assert {k: end[k] <= max(settled[k], 1) * 1.1 + 5 for k in end} == dict.fromkeys(end, True)


def test_resident_memory_does_not_grow_with_ticks(soak: SoakReport) -> None:
    halfway = soak.at(PLAN.ticks // 2).rss_kb
    later = [s.rss_kb for s in soak.samples if s.tick >= PLAN.ticks // 2]
    assert max(later) - halfway < 4 * 1024  # KiB: a leak of 4 KB per tick would show twice over


# --- the pruning rule ------------------------------------------------------------------------------


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _cycle(session: repo.Session, cycle_id: str, component: str, age: timedelta) -> None:
    opened = NOW - age
    session.add(
        CycleRow(
            id=cycle_id,
            opened_at=opened,
            closed_at=opened + timedelta(minutes=5),
            outcome="resolved",
            component=component,
        )
    )
    session.add(
        TransitionRow(
            cycle_id=cycle_id,
            source="learning",
            dest="idle",
            trigger="learned",
            actor="agent",
            at=opened,
        )
    )
    session.add(
        ArtifactRow(
            cycle_id=cycle_id, kind="telemetry", path="x", sha256="0", size=1, created_at=opened
        )
    )
    session.add(
        AnomalyRow(
            fingerprint=f"{component}:p95_ms",
            component=component,
            metric="p95_ms",
            detector="slo",
            category="latency",
            severity="major",
            status="closed",
            onset=opened,
            last_seen=opened,
            cycle_id=cycle_id,
        )
    )


def test_pruning_keeps_the_newest_the_last_day_and_each_components_latest(tmp_path: Path) -> None:
    db = open_database(tmp_path / "selfheal.db")
    cycles = tmp_path / "cycles"
    ages = {
        "c-catalog-old": ("catalog", timedelta(days=5)),
        "c-cart-only": ("cart", timedelta(days=4)),  # cart's latest: its cooldown starts there
        "c-catalog-3d": ("catalog", timedelta(days=3)),
        "c-catalog-2d": ("catalog", timedelta(days=2)),
        "c-catalog-20h": ("catalog", timedelta(hours=20)),  # inside the day the budget counts
        "c-catalog-1h": ("catalog", timedelta(hours=1)),
    }
    try:

        def open_cycles(session: repo.Session) -> None:
            for cycle_id, (component, age) in ages.items():
                _cycle(session, cycle_id, component, age)

        db.transact(open_cycles)
        for cycle_id in [*ages, "orphan-left-by-a-crash"]:
            (cycles / cycle_id).mkdir(parents=True)
            (cycles / cycle_id / "telemetry.json").write_text("{}")

        pruned = prune_cycles(db, cycles, keep=2, opened_before=NOW - timedelta(days=1))

        kept = {"c-cart-only", "c-catalog-20h", "c-catalog-1h"}
        assert sorted(pruned.cycles) == sorted(set(ages) - kept)
        assert {c.id for c in db.query(lambda s: repo.cycles(s, 100))} == kept
        assert {p.name for p in cycles.iterdir()} == kept
        assert "orphan-left-by-a-crash" in {Path(d).name for d in pruned.directories}
        remaining = db.query(lambda s: list(s.exec(select(TransitionRow))))
        assert {t.cycle_id for t in remaining} == kept
        assert {
            a.cycle_id for a in db.query(lambda s: repo.cycle_anomalies(s, "c-catalog-old"))
        } == set()
        again = prune_cycles(db, cycles, keep=2, opened_before=NOW - timedelta(days=1))
        assert not again
    finally:
        db.dispose()
