"""A wave's bake and gate: how long it waits, and the evidence its verdict rests on.

Bakes are durable waits (``not_before``), not sleeps, and are timed on the
monotonic clock: each wave's bake is a stored countdown (``bake_until`` is only
the wall-time estimate), so a wall clock stepped by hours during a bake
neither ends it early (skipping the evidence) nor holds the rollout for hours.
When the bake is over, the windows it filled are closed and the updated
targets' per-instance windows are judged against the others' and the
component's objectives and healthy baseline (``rollout.judge_gate``).
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from states.clock import Countdown, boot_of, resume_countdown, start_countdown
from states.context import BeatContext, PermanentError
from states.deploy.rollout import GateLimits, GateVerdict, GroupHealth, judge_gate
from states.telemetry.ingest import close_due_windows, poll_sources
from storage import timers, window_store
from storage.repository import Session
from storage.tables import CycleRow, WaveRow, WindowRow


def update_wave(
    ctx: BeatContext, wave: WaveRow, *, bake: Countdown | None = None, **fields: Any
) -> None:
    """Change the wave's fields (and its bake countdown) in one transaction."""

    def write(session: Session) -> None:
        row = session.get(WaveRow, wave.id)
        if row is None:
            raise PermanentError(f"wave {wave.index} vanished")
        for key, value in fields.items():
            setattr(row, key, value)
        session.add(row)
        if bake is not None:
            _store_bake(session, ctx, wave, bake)

    ctx.db.transact(write)
    for key, value in fields.items():
        setattr(wave, key, value)


def bake_key(cycle_id: str, index: int) -> str:
    """The countdown key of one wave's bake."""
    return f"bake:{cycle_id}:{index}"


def _store_bake(session: Session, ctx: BeatContext, wave: WaveRow, bake: Countdown) -> None:
    timers.set_timer(
        session,
        bake_key(wave.cycle_id, wave.index),
        duration_s=bake.duration_s,
        started_mono=bake.started_mono,
        boot_id=bake.boot_id,
        now=ctx.clock.now(),
    )


def start_bake(ctx: BeatContext, wave: WaveRow, duration_s: float, **fields: Any) -> None:
    """Start (or extend) the wave's bake: its countdown, and ``bake_until`` for people to read."""
    bake = start_countdown(ctx.clock, duration_s)
    until = ctx.clock.now() + timedelta(seconds=bake.duration_s)
    update_wave(ctx, wave, bake=bake, bake_until=until, **fields)


def bake_left_s(ctx: BeatContext, wave: WaveRow) -> float:
    """Seconds the wave still bakes, on the monotonic clock (restarted in full after a reboot)."""
    if wave.bake_until is None:
        return 0.0
    row = ctx.db.query(lambda s: timers.timer(s, bake_key(wave.cycle_id, wave.index)))
    if row is None:  # baking since before bakes had countdowns: at most one full bake from now
        wall_left = (wave.bake_until - ctx.clock.now()).total_seconds()
        stored = start_countdown(ctx.clock, min(max(wall_left, 0.0), ctx.settings.deploy.bake_s))
    else:
        stored = Countdown(row.duration_s, row.started_mono, row.boot_id)
    kept, left = resume_countdown(stored, ctx.clock)
    if row is None or kept != stored:
        ctx.db.transact(lambda s: _store_bake(s, ctx, wave, kept))
    return left


def group_health(windows: list[WindowRow]) -> GroupHealth:
    """Requests, errors and the median window P95 over a set of per-instance windows."""
    p95s = [w.p95 for w in windows if w.p95 is not None]
    median = statistics.median(p95s) if p95s else None
    return GroupHealth(sum(w.count for w in windows), sum(w.errors for w in windows), median)


def judging_time(ctx: BeatContext, wave: WaveRow) -> datetime:
    """The wall time to close the bake's windows at.

    Never before the wall time the bake started at plus the monotonic time since
    (nor before the application plus one bake, which a gate always waited out,
    even across a reboot): a wall clock set back during the bake must not leave
    the windows the bake filled open, and the gate without evidence.
    """
    now = ctx.clock.now()
    floors = [now]
    if wave.applied_at is not None:
        floors.append(wave.applied_at + timedelta(seconds=ctx.settings.deploy.bake_s))
    row = ctx.db.query(lambda s: timers.timer(s, bake_key(wave.cycle_id, wave.index)))
    if row is not None and row.boot_id == boot_of(ctx.clock):
        elapsed = max(0.0, ctx.clock.monotonic() - row.started_mono)
        floors.append(row.started_at + timedelta(seconds=elapsed))
    return max(floors)


def gate_verdict(
    ctx: BeatContext, cycle: CycleRow, wave: WaveRow, waves: list[WaveRow]
) -> GateVerdict:
    now = judging_time(ctx, wave)
    poll_sources(ctx.settings, ctx.db, now)
    ctx.db.transact(lambda s: close_due_windows(s, ctx.settings, now))
    updated = {t for w in waves if w.index <= wave.index for t in w.targets}
    everyone = {t for w in waves for t in w.targets}
    since = wave.applied_at or now

    def gather(session: Session) -> tuple[list[WindowRow], list[WindowRow], float | None]:
        rows = window_store.component_windows(session, cycle.component, instance=None, since=since)
        per_instance = [r for r in rows if r.instance]
        healthy = [
            w.p95
            for w in window_store.component_windows(
                session, cycle.component, until=cycle.opened_at, limit=60
            )
            if w.p95 is not None and not w.anomalous
        ]
        base = statistics.median(healthy) if healthy else None
        return (
            [r for r in per_instance if r.instance in updated],
            [r for r in per_instance if r.instance in everyone - updated],
            base,
        )

    mine, others, baseline = ctx.db.query(gather)
    component = ctx.settings.component(cycle.component)
    limits = GateLimits(
        slo_p95_ms=component.slo_p95_ms,
        slo_error_rate=component.slo_error_rate,
        baseline_p95_ms=baseline,
        tolerance=ctx.settings.deploy.gate_tolerance,
        baseline_factor=ctx.settings.detect.deviation_factor,
        min_samples=ctx.settings.deploy.min_gate_samples,
        min_delta_ms=ctx.settings.deploy.gate_min_delta_ms,
    )
    return judge_gate(group_health(mine), group_health(others) if others else None, limits)


def gate_record(verdict: GateVerdict, extensions: int) -> dict[str, Any]:
    return {"passed": verdict.passed, "reasons": verdict.reasons, "extensions": extensions}
