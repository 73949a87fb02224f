"""Phase 6 beats: plan waves, roll out with write-ahead records, bake, gate, confirm, roll back.

Exactly-once per target rests on two rules: an intent row is written before a
target is touched, and whether the change happened is always asked of the
target itself. A resumed rollout therefore never deploys a target that
already runs the version, and never forgets one that was half done.
Bakes are durable waits (``not_before``), not sleeps, and are timed on the
monotonic clock: each wave's bake is a stored countdown (``bake_until`` is only
the wall-time estimate), so a wall clock stepped by hours during a bake
neither ends it early (skipping the evidence) nor holds the rollout for hours.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from states import failpoints
from states.artifacts import DeploymentArtifact, WaveEntry
from states.clock import Countdown, boot_of, resume_countdown, start_countdown
from states.context import BeatContext, BeatResult, PermanentError, TemporaryError
from states.deploy.deployers import Deployer, DeployError
from states.deploy.rollout import GateLimits, GateVerdict, GroupHealth, judge_gate, plan_waves
from states.registry import beat
from states.telemetry.ingest import close_due_windows, poll_sources
from storage import repository as repo
from storage import timers
from storage.repository import Session
from storage.tables import CycleRow, DeployActionRow, WaveRow, WindowRow


def _cycle(ctx: BeatContext) -> CycleRow:
    cycle_id = ctx.require_cycle()
    return ctx.db.query(lambda s: repo.cycle(s, cycle_id))


@beat("deploy.plan_waves")
def plan(ctx: BeatContext) -> BeatResult:
    """Record every target's current version and split the targets into waves."""
    cycle = _cycle(ctx)
    if not cycle.validated_version:
        raise PermanentError("no validated version to deploy")
    existing = ctx.db.query(lambda s: repo.waves(s, cycle.id))
    if existing:
        return BeatResult(output={"waves": [w.targets for w in existing], "reused": True})
    deployer = ctx.deployer_factory()
    previous = deployer.running_versions()
    silent = sorted(t for t, v in previous.items() if v is None)
    if silent:
        raise TemporaryError(
            f"targets not answering before rollout: {', '.join(silent)}", delay_s=2.0
        )
    waves = plan_waves(deployer.targets(), ctx.settings.deploy.waves)

    def store(session: Session) -> None:
        for index, targets in enumerate(waves):
            session.add(WaveRow(cycle_id=cycle.id, index=index, targets=targets))
        row = repo.cycle(session, cycle.id)
        repo.summary_update(row, previous_versions=previous, deploy_version=cycle.validated_version)
        session.add(row)

    ctx.db.transact(store)
    return BeatResult(output={"waves": waves, "previous_versions": previous})


def _intent(
    ctx: BeatContext,
    cycle: CycleRow,
    wave: WaveRow,
    target: str,
    action: str,
    to_version: str,
    from_version: str | None,
) -> DeployActionRow:
    def write(session: Session) -> DeployActionRow:
        row = repo.deploy_action(
            session, cycle_id=cycle.id, action=action, wave=wave.index, target=target
        )
        if row is None:
            row = DeployActionRow(
                cycle_id=cycle.id,
                action=action,
                wave=wave.index,
                target=target,
                from_version=from_version,
                to_version=to_version,
                intent_at=ctx.clock.now(),
            )
            session.add(row)
            session.flush()
        return row

    return ctx.db.transact(write)


def _confirm(ctx: BeatContext, row: DeployActionRow) -> None:
    def mark(session: Session) -> None:
        stored = repo.deploy_action(
            session, cycle_id=row.cycle_id, action=row.action, wave=row.wave, target=row.target
        )
        if stored is not None:
            stored.status, stored.done_at = "done", ctx.clock.now()
            session.add(stored)

    ctx.db.transact(mark)


def move_target(ctx: BeatContext, deployer: Deployer, row: DeployActionRow) -> bool:
    """Bring one target to ``row.to_version`` unless it already runs it; True if we changed it."""
    if row.status == "done":
        return False
    changed = False
    failpoints.hit(f"deploy:{row.action}:{row.target}:intent")
    if deployer.running_versions().get(row.target) != row.to_version:
        timeout = ctx.settings.deploy.deploy_timeout_s
        try:
            if row.action == "rollback":
                deployer.rollback(row.target, row.to_version, timeout_s=timeout)
            else:
                deployer.deploy(row.target, row.to_version, timeout_s=timeout)
        except DeployError as exc:
            raise TemporaryError(str(exc), delay_s=3.0) from exc
        changed = True
        failpoints.hit(f"deploy:{row.action}:{row.target}:effect")
    running = deployer.running_versions().get(row.target)
    if running != row.to_version:
        raise TemporaryError(f"{row.target} runs {running}, expected {row.to_version}", delay_s=2.0)
    _confirm(ctx, row)
    return changed


def _apply_wave(ctx: BeatContext, deployer: Deployer, cycle: CycleRow, wave: WaveRow) -> None:
    previous: dict[str, str | None] = cycle.summary.get("previous_versions", {})
    version = str(cycle.validated_version)
    for target in wave.targets:
        row = _intent(ctx, cycle, wave, target, "deploy", version, previous.get(target))
        move_target(ctx, deployer, row)
        ctx.log.info("target updated", target=target, version=version, wave=wave.index)
    _start_bake(ctx, wave, ctx.settings.deploy.bake_s, status="baking", applied_at=ctx.clock.now())


def _update_wave(
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


def _start_bake(ctx: BeatContext, wave: WaveRow, duration_s: float, **fields: Any) -> None:
    """Start (or extend) the wave's bake: its countdown, and ``bake_until`` for people to read."""
    bake = start_countdown(ctx.clock, duration_s)
    until = ctx.clock.now() + timedelta(seconds=bake.duration_s)
    _update_wave(ctx, wave, bake=bake, bake_until=until, **fields)


def _bake_left_s(ctx: BeatContext, wave: WaveRow) -> float:
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


def _judging_time(ctx: BeatContext, wave: WaveRow) -> datetime:
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


def _gate(ctx: BeatContext, cycle: CycleRow, wave: WaveRow, waves: list[WaveRow]) -> GateVerdict:
    now = _judging_time(ctx, wave)
    poll_sources(ctx.settings, ctx.db, now)
    ctx.db.transact(lambda s: close_due_windows(s, ctx.settings, now))
    updated = {t for w in waves if w.index <= wave.index for t in w.targets}
    everyone = {t for w in waves for t in w.targets}
    since = wave.applied_at or now

    def gather(session: Session) -> tuple[list[WindowRow], list[WindowRow], float | None]:
        rows = repo.component_windows(session, cycle.component, instance=None, since=since)
        per_instance = [r for r in rows if r.instance]
        healthy = [
            w.p95
            for w in repo.component_windows(
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


def _gate_record(verdict: GateVerdict, extensions: int) -> dict[str, Any]:
    return {"passed": verdict.passed, "reasons": verdict.reasons, "extensions": extensions}


@beat("deploy.roll_out")
def roll_out(ctx: BeatContext) -> BeatResult:
    """Apply waves in order; each bakes, then must pass its gate before the next starts."""
    cycle = _cycle(ctx)
    deployer = ctx.deployer_factory()
    waves = ctx.db.query(lambda s: repo.waves(s, cycle.id))
    for wave in waves:
        if wave.status == "passed":
            continue
        if wave.status == "failed":
            return BeatResult(
                output={"failed_wave": wave.index}, cycle_updates={"gate_passed": False}
            )
        if ctx.stop_requested():
            return BeatResult(
                wait_until=ctx.clock.now(), wait_reason="stopping; resumes on the next start"
            )
        if wave.status in ("planned", "applying"):
            _update_wave(ctx, wave, status="applying")
            _apply_wave(ctx, deployer, cycle, wave)
        left = _bake_left_s(ctx, wave)
        if left > 0:
            return BeatResult(
                wait_until=ctx.clock.now() + timedelta(seconds=left),
                wait_reason=f"baking wave {wave.index + 1}/{len(waves)}",
            )
        extensions = int(wave.gate.get("extensions", 0))
        verdict = _gate(ctx, cycle, wave, waves)
        if verdict.passed is None and extensions < ctx.settings.deploy.max_bake_extensions:
            extension = max(ctx.settings.deploy.bake_s / 2, 1.0)
            _start_bake(ctx, wave, extension, gate=_gate_record(verdict, extensions + 1))
            return BeatResult(
                wait_until=ctx.clock.now() + timedelta(seconds=extension),
                wait_reason=f"wave {wave.index + 1}: {'; '.join(verdict.reasons)}",
            )
        if verdict.passed is None:
            verdict = GateVerdict(
                False, [*verdict.reasons, "not enough evidence after every bake extension"]
            )
        _update_wave(
            ctx,
            wave,
            status="passed" if verdict.passed else "failed",
            gate=_gate_record(verdict, extensions),
        )
        ctx.log.info("wave gate", wave=wave.index, passed=verdict.passed, reasons=verdict.reasons)
        if not verdict.passed:
            return BeatResult(
                output={"failed_wave": wave.index, "reasons": verdict.reasons},
                cycle_updates={"gate_passed": False},
            )
    return BeatResult(output={"waves": len(waves)}, cycle_updates={"gate_passed": True})


def deployment_artifact(
    ctx: BeatContext, cycle: CycleRow, outcome: str, finals: dict[str, str | None]
) -> DeploymentArtifact:
    """deployment.json from the stored waves."""
    waves = ctx.db.query(lambda s: repo.waves(s, cycle.id))
    return DeploymentArtifact(
        cycle_id=cycle.id,
        version=str(cycle.validated_version),
        previous_versions=cycle.summary.get("previous_versions", {}),
        waves=[
            WaveEntry(
                index=w.index,
                targets=w.targets,
                status=w.status,
                applied_at=w.applied_at,
                gate=w.gate,
            )
            for w in waves
        ],
        outcome=outcome,
        final_versions=finals,
    )


@beat("deploy.confirm")
def confirm(ctx: BeatContext) -> BeatResult:
    """Ask every target what it runs and write deployment.json."""
    cycle = _cycle(ctx)
    finals = ctx.deployer_factory().running_versions()
    if cycle.gate_passed:
        wrong = sorted(t for t, v in finals.items() if v != cycle.validated_version)
        if wrong:
            raise TemporaryError(
                f"targets not on {cycle.validated_version}: {', '.join(wrong)}", delay_s=2.0
            )
    outcome = "healthy" if cycle.gate_passed else "gate_failed"
    ctx.artifacts.write_model(
        cycle.id, "deployment", deployment_artifact(ctx, cycle, outcome, finals)
    )
    return BeatResult(output={"outcome": outcome, "versions": finals})


@beat("deploy.revert_targets")
def revert_targets(ctx: BeatContext) -> BeatResult:
    """Return every target this cycle touched (or may have touched) to its previous version."""
    cycle = _cycle(ctx)
    deployer = ctx.deployer_factory()
    touched = ctx.db.query(lambda s: repo.deploy_actions(s, cycle.id, "deploy"))
    waves = {w.index: w for w in ctx.db.query(lambda s: repo.waves(s, cycle.id))}
    reverted = []
    for action in touched:
        if action.from_version is None:
            raise PermanentError(f"{action.target}: previous version unknown; roll it back by hand")
        row = _intent(
            ctx,
            cycle,
            waves[action.wave],
            action.target,
            "rollback",
            action.from_version,
            action.to_version,
        )
        if move_target(ctx, deployer, row):
            reverted.append(action.target)
    return BeatResult(output={"reverted": reverted, "targets": [a.target for a in touched]})


@beat("deploy.record_rollback")
def record_rollback(ctx: BeatContext) -> BeatResult:
    """Write deployment.json for a rolled-back rollout."""
    cycle = _cycle(ctx)
    finals = ctx.deployer_factory().running_versions()
    ctx.artifacts.write_model(
        cycle.id, "deployment", deployment_artifact(ctx, cycle, "rolled_back", finals)
    )
    return BeatResult(output={"versions": finals}, cycle_updates={"gate_passed": False})
