"""Driving the real engine minute by minute on a clock the test moves, and dated git commits.

Detection scenarios need long stretches of simulated time: each minute the
service writes what it would have written (log lines, a metrics page), then
the engine ticks once, as the daemon would, on a real SQLite data directory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import engine
from states.progression import Runtime
from states.settings import Settings
from storage import repository as repo
from storage.tables import CycleRow
from tests.support.clocks import SteppedClock
from tests.support.history import CHEN, git


def commit(root: Path, subject: str, files: dict[str, str], day: str | None = None) -> str:
    """Write ``files`` and commit them as Chen Wei on ``day`` (ISO 8601; now if None);
    returns the sha."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", "-A")
    dated = CHEN if day is None else {**CHEN, "GIT_AUTHOR_DATE": day, "GIT_COMMITTER_DATE": day}
    git(root, "commit", "-q", "-m", subject, env=dated)
    return git(root, "rev-parse", "HEAD")


def new_repository(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    return root


def tick_minutes(
    settings: Settings, start: datetime, minutes: int, minute: Callable[[datetime], None]
) -> None:
    """Each minute ``minute(now)`` then one tick; stops early once a cycle has closed."""
    clock = SteppedClock(start)
    rt = engine.open_runtime(settings, threading.Event(), clock=clock)
    try:
        for _ in range(minutes):
            minute(clock.now())
            engine.tick(rt)
            if rt.db.query(repo.last_closed_cycle) is not None:
                break
            clock.advance(60.0)
    finally:
        engine.close_runtime(rt)


def run_until_a_cycle_closes(
    rt: Runtime, clock: SteppedClock, window: Callable[[], None], step_s: float, ticks: int
) -> CycleRow:
    """Each step ``window()``, the clock moved ``step_s``, one tick; the newest cycle once it
    has closed (fails after ``ticks`` steps without one)."""
    for _ in range(ticks):
        window()
        clock.advance(step_s)
        engine.tick(rt)
        cycles = rt.db.query(lambda s: repo.cycles(s, 1))
        if cycles and cycles[0].closed_at is not None:
            return cycles[0]
    raise AssertionError(f"no closed cycle after {ticks} windows")


def read_artifact(settings: Settings, cycle_id: str, kind: str) -> dict[str, Any]:
    """A cycle's ``<kind>.json`` as written to its directory."""
    path = settings.agent.data_dir / "cycles" / cycle_id / f"{kind}.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
