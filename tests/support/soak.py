"""A soak: thousands of ticks of the real engine on generated telemetry, with a clock the test moves.

``engine.open_runtime`` then ``engine.tick``, as the daemon runs them, on a
real SQLite data directory. Each tick the clock advances ``tick_s`` and the
service's log gains the requests of that interval (two components, four
instances); every ``incident_every_s`` the catalog turns slow for a while, so
detection opens cycles that go through diagnosis and learning and close. The
operator's own sequences folder (a documented feature) drops the diagnosis
beats after ``record-evidence``, so every cycle is inconclusive: a soak is
about what accumulates, not about git history, and cycles stay cheap.

What is watched: resident memory (``VmRSS``), the database file (and its
WAL), rows per table, and cycle directories on disk, sampled along the way.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import SQLModel, select

from agent import engine
from sequences.loading import bundled_folder
from states.settings import Settings
from storage.db import Database
from tests.support.clocks import SteppedClock

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
INSTANCES = ("web-1", "web-2", "web-3", "web-4")
COMPONENTS = ("catalog", "cart")
DIAGNOSIS = "phase-3-diagnosis.json"


@dataclass(frozen=True)
class SoakPlan:
    """The dials of one soak: ``ticks`` polls ``tick_s`` apart; the log gains a batch of lines
    every ``write_every`` ticks (between batches a tick finds nothing new, as most polls do)."""

    ticks: int = 2000
    tick_s: float = 60.0
    write_every: int = 5
    window_s: float = 300.0
    retention_s: float = 4 * 3600.0
    slo_period_s: float = 6 * 3600.0
    lines_per_series: int = 8
    incident_every_s: float = 3 * 3600.0
    incident_s: float = 30 * 60.0
    keep_cycles: int = 2
    max_cycles_per_day: int = 24
    rotate_every: int = 1000
    sample_every: int = 50


@dataclass
class Sample:
    """One look at the soak."""

    tick: int
    rss_kb: int
    db_bytes: int
    wal_bytes: int
    rows: dict[str, int]
    cycle_dirs: int


@dataclass
class SoakReport:
    """What the soak saw, start to end."""

    plan: SoakPlan
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0
    cycles_opened: int = 0
    pruned_cycles: int = 0
    states: dict[str, int] = field(default_factory=dict)

    @property
    def peak_rss_kb(self) -> int:
        return max(s.rss_kb for s in self.samples)

    def at(self, tick: int) -> Sample:
        """The first sample taken at or after ``tick``."""
        return next(s for s in self.samples if s.tick >= tick)

    def as_dict(self) -> dict[str, Any]:
        first, last = self.samples[0], self.samples[-1]
        return {
            "ticks": self.plan.ticks,
            "simulated_hours": round(self.plan.ticks * self.plan.tick_s / 3600, 1),
            "seconds": round(self.seconds, 1),
            "cycles_opened": self.cycles_opened,
            "cycles_pruned": self.pruned_cycles,
            "rss_kb": {"start": first.rss_kb, "peak": self.peak_rss_kb, "end": last.rss_kb},
            "db_bytes": {
                "start": first.db_bytes,
                "peak": max(s.db_bytes for s in self.samples),
                "end": last.db_bytes,
            },
            "wal_bytes_peak": max(s.wal_bytes for s in self.samples),
            "rows_end": last.rows,
            "cycle_dirs_end": last.cycle_dirs,
        }


def rss_kb() -> int:
    """This process's resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak_settings(root: Path, plan: SoakPlan) -> Settings:
    """One JSON log source, two components, a command deployer that is never reached."""
    return Settings.model_validate(
        {
            "agent": {
                "data_dir": str(root / "data"),
                "autonomy": "auto",
                "cooldown_s": plan.incident_s,
                "keep_cycles": plan.keep_cycles,
                "max_cycles_per_day": plan.max_cycles_per_day,
                "sequences_dir": str(root / "sequences"),
            },
            "telemetry": {
                "window_s": plan.window_s,
                "lateness_s": plan.window_s / 4,
                "retention_s": plan.retention_s,
                "sources": [{"name": "svc", "paths": [str(root / "logs" / "*.log")]}],
            },
            "detect": {
                "min_samples": 5,
                "min_baseline_windows": 5,
                "slo_period_s": plan.slo_period_s,
                "burn_rate_pairs": [
                    {"name": "fast", "long_s": 1800.0, "short_s": 300.0, "factor": 14.4}
                ],
            },
            "components": {c: {"slo_p95_ms": 50.0, "slo_error_rate": 0.05} for c in COMPONENTS},
            "repository": {"path": str(root)},
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


def soak_sequences(folder: Path) -> None:
    """The bundled sequences, diagnosis cut to recording its evidence (so cycles end inconclusive)."""
    shutil.copytree(bundled_folder(), folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    spec = json.loads((folder / DIAGNOSIS).read_text())
    spec["beats"] = [b for b in spec["beats"] if b["id"] == "record-evidence"]
    (folder / DIAGNOSIS).write_text(json.dumps(spec))


def _lines(clock: SteppedClock, plan: SoakPlan, rng: random.Random, slow: bool) -> str:
    """The requests of the last ``write_every`` ticks, every component on every instance."""
    span_s = plan.tick_s * plan.write_every
    count = plan.lines_per_series * len(INSTANCES) * len(COMPONENTS)
    end = clock.now()
    out = []
    for i in range(count):
        component = COMPONENTS[i % len(COMPONENTS)]
        instance = INSTANCES[(i // len(COMPONENTS)) % len(INSTANCES)]
        base = rng.lognormvariate(1.6, 0.3)
        duration = base * 25 if slow and component == "catalog" else base
        at = end - timedelta(seconds=span_s * (count - i) / count)
        out.append(
            json.dumps(
                {
                    "ts": at.isoformat(timespec="milliseconds"),
                    "component": component,
                    "operation": "GET /items",
                    "duration_ms": round(duration, 2),
                    "status": 200,
                    "level": "info",
                    "message": "served",
                    "version": "abc1234",
                    "instance": instance,
                }
            )
        )
    return "\n".join(out) + "\n"


def _look(db: Database, tick: int, data: Path) -> Sample:
    path = data / "selfheal.db"
    wal = path.with_name(path.name + "-wal")

    def rows(session: Any) -> dict[str, int]:
        counts = {}
        for name, table in SQLModel.metadata.tables.items():
            counts[name] = int(session.exec(select(func.count()).select_from(table)).one())
        return counts

    cycles = data / "cycles"
    return Sample(
        tick=tick,
        rss_kb=rss_kb(),
        db_bytes=path.stat().st_size,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        rows=db.query(rows),
        cycle_dirs=len([p for p in cycles.iterdir() if p.is_dir()]) if cycles.exists() else 0,
    )


def run_soak(root: Path, plan: SoakPlan) -> SoakReport:
    """Run ``plan.ticks`` ticks in ``root`` (an empty directory) and report what was sampled."""
    (root / "logs").mkdir(parents=True)
    soak_sequences(root / "sequences")
    clock = SteppedClock(START)
    settings = soak_settings(root, plan)
    rt = engine.open_runtime(settings, threading.Event(), clock=clock)
    rng = random.Random(11)
    report = SoakReport(plan)
    log = root / "logs" / "svc.log"
    started = time.monotonic()
    try:
        for tick in range(plan.ticks + 1):
            elapsed = tick * plan.tick_s
            slow = elapsed % plan.incident_every_s >= plan.incident_every_s - plan.incident_s
            if tick % plan.write_every == 0:
                with log.open("a") as handle:
                    handle.write(_lines(clock, plan, rng, slow))
            outcome = engine.tick(rt)
            for step in outcome.steps:
                report.states[step.state] = report.states.get(step.state, 0) + 1
                if step.kind == "transitioned" and step.state == "diagnosing":
                    report.cycles_opened += 1
            report.pruned_cycles += len(outcome.pruned.cycles)
            if tick % plan.sample_every == 0:
                report.samples.append(_look(rt.db, tick, settings.agent.data_dir))
            if plan.rotate_every and tick and tick % plan.rotate_every == 0:
                log.rename(log.with_suffix(".log.1"))  # logrotate: the old file leaves the glob
            clock.advance(plan.tick_s)
    finally:
        report.seconds = time.monotonic() - started
        engine.close_runtime(rt)
    return report
