"""The wall clock jumping by hours during a bake neither skips nor repeats a wave.

The engine runs in-process (``engine.open_runtime`` then ``engine.tick``, as the
daemon does) with a clock the test moves: monotonic time advances one second
per tick, and the wall clock is stepped by hours during bakes, as NTP or a
person setting the time would. The deployer is the real ``command`` deployer
driving ``tests/support/command_target.py``, whose history file is each
target's own account of every change made to it; the gate judges telemetry
written as the service would, stamped with the (jumping) wall clock.

Expected on the monotonic clock: every wave bakes its full ``bake_s`` (a
forward jump does not end a bake), and no longer than that plus one tick (a
backward jump does not hold the rollout for hours). After a restart on the
same boot the bake finishes what was left; after a reboot it restarts in full.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import engine
from states.progression import Runtime
from states.settings import Settings
from storage import deployment_store, timers
from storage import repository as repo
from storage.db import open_database
from storage.tables import CycleRow
from tests.support.clocks import SteppedClock

BAKE_S = 60.0
TICK_S = 1.0
HOUR = 3600.0
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TARGETS = ("t1", "t2", "t3", "t4")  # waves 25/50/100 %: [t1], [t2], [t3, t4]
OLD, NEW = "a" * 40, "b" * 40
TARGET_SCRIPT = Path(__file__).parent / "support" / "command_target.py"
MAX_TICKS = 600


def make_settings(root: Path) -> Settings:
    target = [sys.executable, str(TARGET_SCRIPT)]
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data"), "autonomy": "auto"},
            "telemetry": {
                "window_s": 5.0,
                "lateness_s": 1.0,
                "sources": [{"name": "svc", "paths": [str(root / "logs" / "*.log")]}],
            },
            "components": {"catalog": {"slo_p95_ms": 300.0, "slo_error_rate": 0.05}},
            "deploy": {
                "kind": "command",
                "bake_s": BAKE_S,
                "min_gate_samples": 5,
                "max_bake_extensions": 2,
                "command": {
                    "targets": list(TARGETS),
                    "deploy": [*target, "deploy", str(root / "fleet"), "{target}", "{version}"],
                    "version": [*target, "version", str(root / "fleet"), "{target}"],
                },
            },
        }
    )


@dataclass
class Rollout:
    """A rollout seen from outside: when (monotonic) targets changed and gates passed."""

    root: Path
    clock: SteppedClock
    rt: Runtime
    applied: dict[str, float] = field(default_factory=dict)
    passed: dict[int, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    @property
    def fleet(self) -> Path:
        return self.root / "fleet"

    def history(self) -> list[dict[str, Any]]:
        path = self.fleet / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def running(self, target: str) -> str:
        return (self.fleet / target).read_text().strip()

    def write_telemetry(self) -> None:
        """One tick's requests to every target, stamped by the wall clock as a service would."""
        now = self.clock.now()
        lines = [
            json.dumps(
                {
                    "ts": (now - timedelta(seconds=TICK_S * (i + 0.5) / 3)).isoformat(),
                    "component": "catalog",
                    "operation": "GET /items",
                    "duration_ms": round(self.rng.uniform(4.0, 6.0), 2),
                    "status": 200,
                    "level": "info",
                    "message": "served",
                    "version": self.running(target),
                    "instance": target,
                }
            )
            for target in TARGETS
            for i in range(3)
        ]
        with (self.root / "logs" / "svc.log").open("a") as log:
            log.write("\n".join(lines) + "\n")

    def state(self) -> str:
        return self.rt.db.query(lambda s: repo.agent_state(s, self.clock.now())).state

    def wave_statuses(self) -> list[str]:
        return [w.status for w in self.rt.db.query(lambda s: deployment_store.waves(s, "c1"))]

    def tick(self) -> None:
        self.write_telemetry()
        engine.tick(self.rt)
        now = self.clock.monotonic()
        for change in self.history():
            self.applied.setdefault(change["target"], now)
        for index, status in enumerate(self.wave_statuses()):
            if status == "passed":
                self.passed.setdefault(index, now)
        self.clock.advance(TICK_S)

    def baked_s(self, wave: int) -> float:
        """Monotonic seconds from the wave's first target changing to its gate passing."""
        first = min(self.applied[t] for t in wave_targets(wave))
        return self.passed[wave] - first

    def run(self, on_tick: Callable[[Rollout], None] = lambda _: None) -> None:
        for _ in range(MAX_TICKS):
            if self.state() == "idle":
                return
            on_tick(self)
            self.tick()
        raise AssertionError(f"no end after {MAX_TICKS} ticks; waves {self.wave_statuses()}")

    def restart(self, clock: SteppedClock) -> None:
        """A new runtime on the same data directory, as a restarted daemon would open."""
        engine.close_runtime(self.rt)
        self.clock = clock
        self.rt = engine.open_runtime(self.rt.settings, threading.Event(), clock=clock)

    def bake_age_s(self, wave: int) -> float | None:
        """Monotonic seconds since the wave's first target changed, if it has."""
        seen = [self.applied[t] for t in wave_targets(wave) if t in self.applied]
        return self.clock.monotonic() - min(seen) if seen else None


def wave_targets(index: int) -> tuple[str, ...]:
    return (("t1",), ("t2",), ("t3", "t4"))[index]


@pytest.fixture
def rollout(tmp_path: Path) -> Iterator[Rollout]:
    """The machine in ``deploying`` for cycle ``c1`` (validated ``NEW``); every target on ``OLD``."""
    (tmp_path / "fleet").mkdir()
    (tmp_path / "logs").mkdir()
    for target in TARGETS:
        (tmp_path / "fleet" / target).write_text(OLD)
    clock = SteppedClock(START)
    rt = engine.open_runtime(make_settings(tmp_path), threading.Event(), clock=clock)

    def seed(session: repo.Session) -> None:
        session.add(
            CycleRow(
                id="c1",
                opened_at=START,
                component="catalog",
                category="latency",
                metric="p95_ms",
                cause_found=True,
                candidate_ready=True,
                validation_passed=True,
                validated_version=NEW,
            )
        )
        repo.record_transition(
            session,
            source="validating",
            dest="deploying",
            trigger="validated",
            actor="agent",
            reason="seeded by the test",
            cycle_id="c1",
            state_cycle_id="c1",
            paused_from=None,
            now=START,
        )

    rt.db.transact(seed)
    found = Rollout(tmp_path, clock, rt)
    yield found
    engine.close_runtime(found.rt)


def jump_during_bakes(seconds: float, at_s: float) -> Callable[[Rollout], None]:
    """Step the wall clock by ``seconds`` once per wave, ``at_s`` into its bake."""
    done: set[int] = set()

    def on_tick(r: Rollout) -> None:
        for wave in range(3):
            age = r.bake_age_s(wave)
            if wave not in done and wave not in r.passed and age is not None and age >= at_s:
                r.clock.jump(seconds)
                done.add(wave)

    return on_tick


def assert_each_target_changed_once_in_wave_order(r: Rollout) -> None:
    assert [(c["target"], c["version"]) for c in r.history()] == [(t, NEW) for t in TARGETS]
    assert r.wave_statuses() == ["passed", "passed", "passed"]
    cycle = r.rt.db.query(lambda s: repo.cycle(s, "c1"))
    assert (cycle.gate_passed, cycle.outcome) == (True, "resolved")


def test_without_jumps_each_wave_bakes_its_duration(rollout: Rollout) -> None:
    rollout.run()
    assert_each_target_changed_once_in_wave_order(rollout)
    assert [rollout.baked_s(w) for w in range(3)] == pytest.approx([BAKE_S] * 3, abs=TICK_S)


def test_a_forward_jump_of_hours_does_not_end_a_bake_early(rollout: Rollout) -> None:
    rollout.run(jump_during_bakes(+3 * HOUR, at_s=20.0))

    assert_each_target_changed_once_in_wave_order(rollout)
    assert rollout.clock.now() - START > timedelta(hours=9)  # the wall clock did jump
    assert [rollout.baked_s(w) for w in range(3)] == pytest.approx([BAKE_S] * 3, abs=TICK_S)


def test_a_backward_jump_of_hours_does_not_hold_the_rollout(rollout: Rollout) -> None:
    rollout.run(jump_during_bakes(-3 * HOUR, at_s=30.0))

    assert_each_target_changed_once_in_wave_order(rollout)
    assert rollout.clock.now() < START  # wall time ran backwards past where it began
    assert [rollout.baked_s(w) for w in range(3)] == pytest.approx([BAKE_S] * 3, abs=TICK_S)


def test_a_restart_in_the_same_boot_bakes_only_what_was_left(rollout: Rollout) -> None:
    restarted: list[bool] = []

    def restart_40s_into_wave_2(r: Rollout) -> None:
        age = r.bake_age_s(1)
        if age is not None and age >= 40.0 and not restarted:
            # Same boot: the monotonic clock carries on; the wall clock is two hours ahead.
            clock = SteppedClock(r.clock.now() + timedelta(hours=2), r.clock.monotonic(), "boot-a")
            r.restart(clock)
            restarted.append(True)

    rollout.run(restart_40s_into_wave_2)

    assert restarted
    assert_each_target_changed_once_in_wave_order(rollout)
    assert [rollout.baked_s(w) for w in range(3)] == pytest.approx([BAKE_S] * 3, abs=TICK_S)


def test_a_restart_after_a_reboot_bakes_the_full_duration_again(rollout: Rollout) -> None:
    restarted_at: list[float] = []

    def reboot_40s_into_wave_2(r: Rollout) -> None:
        age = r.bake_age_s(1)
        if age is not None and age >= 40.0 and not restarted_at:
            # A new boot: monotonic readings start again from a small origin, wall time is off.
            before = r.clock.monotonic()
            clock = SteppedClock(r.clock.now() - timedelta(hours=5), 5.0, "boot-b")
            r.restart(clock)
            # Keep the test's own record on one scale: shift what was seen to the new origin.
            shift = 5.0 - before
            r.applied = {t: at + shift for t, at in r.applied.items()}
            r.passed = {w: at + shift for w, at in r.passed.items()}
            restarted_at.append(clock.monotonic())

    rollout.run(reboot_40s_into_wave_2)

    assert_each_target_changed_once_in_wave_order(rollout)
    # Neither the 20 s left before the reboot, nor hours: the full bake from the restart.
    assert rollout.passed[1] - restarted_at[0] == pytest.approx(BAKE_S, abs=TICK_S)


def test_a_database_made_before_countdowns_gets_their_table_on_open(tmp_path: Path) -> None:
    path = tmp_path / "selfheal.db"
    open_database(path).dispose()
    with closing(sqlite3.connect(path)) as raw:  # as a file written by an earlier release
        raw.execute("DROP TABLE timer")
        raw.execute("DROP TABLE beat_claim")
        raw.commit()

    db = open_database(path)
    try:
        assert db.query(lambda s: timers.timer(s, "bake:c1:0")) is None
        db.transact(
            lambda s: timers.set_timer(
                s, "bake:c1:0", duration_s=60.0, started_mono=1.0, boot_id="b", now=START
            )
        )
        assert db.query(lambda s: timers.timer(s, "bake:c1:0")) is not None
    finally:
        db.dispose()
