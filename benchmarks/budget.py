"""Detection CPU per judged window with a day, a week and a month of one-minute windows stored.

Burn rates and the error budget are judged at every closed window of a
component with an error-rate objective. Before hourly totals, detection
loaded every window of the SLO period (30 days: 43,200 rows at 60-s windows,
with their JSON columns) for each window it judged; ``legacy_burn`` below is
that code, kept here to measure it. Now it sums the period from hourly totals
plus the windows of the partial hours (``states.detect.budget.stored_report``).

For each history length a fresh SQLite data directory gets that many days of
closed, already judged 60-s windows of one component, shaped like log windows
(about 1,000 requests, a few errors, one version and 20 template counts),
then new closed windows to judge: one (a steady tick) or sixty (the catch-up
after an hour of downtime). ``detect.evaluate`` judges them, before and
after, in a write transaction that is then rolled back, so every repetition
judges the same windows. Figures are CPU time (``process_time``) per judged
window, medians over the repetitions, measured in the same run; the budget
computation alone (one report at the newest window) is timed too, and the
two reports are compared for equality.

Finding the windows to judge (``window_store.unevaluated_windows``, once a tick) is
timed alone and the one-window tick again, each with the partial index on
unjudged windows dropped inside the rolled-back transaction: that is the
work list before it had an index.

Run: ``python -m benchmarks.budget [--days 1 7 30] [--repeats N] [--out FILE]``.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from unittest import mock

from states.detect import beats, burn_rate
from states.detect.budget import policy_for, stored_report
from states.detect.burn_rate import Bucket, BurnRateReport
from states.detect.judgement import Finding, burn_finding
from states.settings import Settings
from storage import window_store
from storage.db import Database, open_database
from storage.repository import Session
from storage.tables import WindowRow

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "budget.json"
COMPONENT = "catalog"
WINDOW = timedelta(seconds=60)
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
T = TypeVar("T")
BATCH = 2000  # windows per insert statement
WORK_LIST_INDEX = "ix_metric_window_unevaluated"


def make_settings() -> Settings:
    """One component with a 1 % error objective; every detection default."""
    return Settings.model_validate(
        {
            "components": {COMPONENT: {"slo_error_rate": 0.01, "slo_p95_ms": 250.0}},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


# --- what detection did before hourly totals ---------------------------------------------


def legacy_report(session: Session, settings: Settings, window: WindowRow) -> BurnRateReport:
    """Every window of the period loaded whole, one bucket each (the judged one appended again)."""
    since = window.end - timedelta(seconds=settings.detect.budget_reach_s())
    recent = window_store.component_windows(
        session, window.component, since=since, until=window.end
    )
    policy = policy_for(settings, window.component)
    assert policy is not None
    buckets = [
        Bucket(w.end.timestamp(), float(w.count - w.errors), float(w.count))
        for w in [*recent, window]
    ]
    return burn_rate.evaluate(policy, buckets, window.end.timestamp())


def legacy_burn(session: Session, settings: Settings, window: WindowRow) -> Finding | None:
    """``detect.beats._burn`` as it was."""
    return burn_finding(window.component, legacy_report(session, settings, window))


# --- the data directory ----------------------------------------------------------------------


def window_row(start: datetime, rng: random.Random, judged: bool) -> dict[str, Any]:
    """Column values of one closed log window (every column, defaults from the model)."""
    count = rng.randint(800, 1200)
    errors = rng.randint(0, count // 200)
    templates = {f"app:{key}": rng.randint(25, 35) for key in range(20)}  # steady messages
    row = WindowRow(
        component=COMPONENT,
        start=start,
        end=start + WINDOW,
        count=count,
        errors=errors,
        error_rate=errors / count,
        p50=rng.uniform(10, 20),
        p95=rng.uniform(40, 60),
        p99=rng.uniform(80, 120),
        health=99.0,
        closed=True,
        evaluated=judged,
        versions={"4f2a9c1e": count},
        templates=templates,
    )
    return row.model_dump(exclude={"id"})


def build(path: Path, days: int, new_windows: int) -> Database:
    """``days`` of judged windows ending where ``new_windows`` windows to judge begin."""
    db = open_database(path)
    rng = random.Random(days)
    first = NOW - days * timedelta(days=1) - new_windows * WINDOW
    total = days * 1440 + new_windows
    for offset in range(0, total, BATCH):
        rows = [
            window_row(first + i * WINDOW, rng, judged=i < days * 1440)
            for i in range(offset, min(offset + BATCH, total))
        ]
        db.transact(partial(window_store.insert_windows, rows=rows))
    return db


# --- measuring -----------------------------------------------------------------------------------


def drop_work_list_index(session: Session) -> None:
    """Detection's work list as it was before its index (DDL is undone with the rollback)."""
    session.connection().exec_driver_sql(f"DROP INDEX {WORK_LIST_INDEX}")


def rolled_back_runs(
    db: Database, repeats: int, work: Callable[[Session], T], *, indexed: bool = True
) -> list[tuple[float, T]]:
    """CPU seconds and result of ``work`` per repetition, each in a write rolled back after."""
    runs = []
    for _ in range(repeats):
        with db.write() as session:
            if not indexed:
                drop_work_list_index(session)
            started = time.process_time()
            result = work(session)
            runs.append((time.process_time() - started, result))
            session.rollback()
    return runs


def cpu_per_window(
    db: Database, settings: Settings, windows: int, repeats: int, *, indexed: bool = True
) -> list[float]:
    """CPU seconds per judged window of each repetition (judged, then rolled back)."""
    judge = partial(beats.evaluate, settings=settings, now=NOW)
    samples = []
    for cpu, report in rolled_back_runs(db, repeats, judge, indexed=indexed):
        assert report["judged"] == windows, report
        samples.append(cpu / report["judged"])
    return samples


def cpu_of(work: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        work()
        samples.append(time.process_time() - started)
    return samples


def work_list(db: Database, repeats: int) -> dict[str, Any]:
    """CPU of finding the windows to judge (once a tick), without and with its index."""

    def find(indexed: bool) -> list[float]:
        runs = rolled_back_runs(db, repeats, window_store.unevaluated_windows, indexed=indexed)
        assert all(len(found) == 1 for _, found in runs), [len(found) for _, found in runs]
        return [cpu for cpu, _ in runs]

    without, with_index = find(indexed=False), find(indexed=True)
    return {
        "without_index_ms": _median_ms(without),
        "with_index_ms": _median_ms(with_index),
        "ratio": round(statistics.median(without) / max(statistics.median(with_index), 1e-9), 1),
    }


def budget_alone(db: Database, settings: Settings, repeats: int) -> dict[str, Any]:
    """One report at the newest window, each way, in fresh read sessions; and are they equal?"""

    def newest(session: Session) -> WindowRow:
        return window_store.component_windows(session, COMPONENT, limit=1)[0]

    def before() -> BurnRateReport:
        return db.query(lambda s: legacy_report(s, settings, newest(s)))

    def after() -> BurnRateReport | None:
        return db.query(lambda s: stored_report(s, settings, COMPONENT, newest(s).end))

    def reference(session: Session) -> BurnRateReport:
        window = newest(session)
        since = window.end - timedelta(seconds=settings.detect.budget_reach_s())
        loaded = window_store.component_windows(session, COMPONENT, since=since, until=window.end)
        policy = policy_for(settings, COMPONENT)
        assert policy is not None
        buckets = [
            Bucket(w.end.timestamp(), float(w.count - w.errors), float(w.count)) for w in loaded
        ]
        return burn_rate.evaluate(policy, buckets, window.end.timestamp())

    return {
        "before_ms": _median_ms(cpu_of(before, repeats)),
        "after_ms": _median_ms(cpu_of(after, repeats)),
        "same_report_as_every_window_once": after() == db.query(reference),
    }


def measure(days: int, new_windows: int, repeats: int) -> dict[str, Any]:
    settings = make_settings()
    with tempfile.TemporaryDirectory(prefix="selfheal-budget-bench-") as tmp:
        db = build(Path(tmp) / "selfheal.db", days, new_windows)
        try:
            with mock.patch.object(beats, "_burn", legacy_burn):
                before = cpu_per_window(db, settings, new_windows, repeats)
            after = cpu_per_window(db, settings, new_windows, repeats)
            unindexed = cpu_per_window(db, settings, new_windows, repeats, indexed=False)
            alone = budget_alone(db, settings, repeats) if new_windows == 1 else None
            found = work_list(db, repeats * 4) if new_windows == 1 else None
        finally:
            db.dispose()
    row: dict[str, Any] = {
        "days": days,
        "windows_stored": days * 1440,
        "judged_per_tick": new_windows,
        "repeats": repeats,
        "before_ms_per_window": _median_ms(before),
        "after_ms_per_window": _median_ms(after),
        "ratio": round(statistics.median(before) / statistics.median(after), 1),
        "after_without_work_list_index_ms_per_window": _median_ms(unindexed),
    }
    if alone is not None:
        row["budget_alone"] = alone
    if found is not None:
        row["work_list"] = found
    return row


def _median_ms(seconds: Sequence[float]) -> float:
    return round(statistics.median(seconds) * 1000.0, 2)


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["detection CPU per judged window (ms, median), 60-s windows of one component", ""]
    lines.append(
        f"{'days':>5} {'stored':>7} {'judged':>7} {'before':>9} {'after':>7} {'ratio':>7}"
        f" {'budget before':>14} {'after':>7} {'same':>5}"
    )
    for r in rows:
        alone = r.get("budget_alone")
        extra = (
            f" {alone['before_ms']:>14} {alone['after_ms']:>7} "
            f"{'yes' if alone['same_report_as_every_window_once'] else 'NO':>5}"
            if alone
            else ""
        )
        lines.append(
            f"{r['days']:>5} {r['windows_stored']:>7} {r['judged_per_tick']:>7} "
            f"{r['before_ms_per_window']:>9} {r['after_ms_per_window']:>7} {r['ratio']:>7}{extra}"
        )
    lines += ["", "finding the windows to judge, once a tick (ms CPU, median)", ""]
    lines.append(
        f"{'days':>5} {'stored':>7} {'no index':>9} {'index':>7} {'ratio':>7}"
        f" {'tick no index':>14} {'tick':>7}"
    )
    for r in rows:
        if "work_list" in r:
            found = r["work_list"]
            lines.append(
                f"{r['days']:>5} {r['windows_stored']:>7} {found['without_index_ms']:>9}"
                f" {found['with_index_ms']:>7} {found['ratio']:>7}"
                f" {r['after_without_work_list_index_ms_per_window']:>14}"
                f" {r['after_ms_per_window']:>7}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 7, 30])
    parser.add_argument("--catch-up", type=int, default=60, help="windows judged in one tick")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    rows = [measure(days, 1, args.repeats) for days in args.days]
    rows += [measure(max(args.days), args.catch_up, max(3, args.repeats // 2))]
    print(format_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "what": "detect.evaluate CPU per judged window, before (every window of the period "
        "loaded) and after (hourly totals); finding the windows to judge without and with "
        "the partial index on unjudged windows, and a tick without it",
        "python": platform.python_version(),
        "rows": rows,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
