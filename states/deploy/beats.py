"""Phase 6 beats: plan waves, roll out wave by wave (apply, bake, gate), confirm.

Each target is moved with a write-ahead record (``target_moves``), each wave
bakes on a durable countdown and must pass its gate (``wave_gate``) before the
next starts; the rollback phase's beats are ``rollback_beats``.
"""

from __future__ import annotations

from datetime import timedelta

from states.artifacts import DeploymentArtifact, WaveEntry
from states.context import BeatContext, BeatResult, PermanentError, TemporaryError
from states.deploy.deployers import Deployer
from states.deploy.rollout import GateVerdict, plan_waves
from states.deploy.target_moves import move_target, record_intent
from states.deploy.wave_gate import (
    bake_left_s,
    gate_record,
    gate_verdict,
    start_bake,
    update_wave,
)
from states.registry import beat
from storage import deployment_store
from storage import repository as repo
from storage.repository import Session
from storage.tables import CycleRow, WaveRow


def cycle_of(ctx: BeatContext) -> CycleRow:
    """The cycle the running beat deploys (or rolls back)."""
    cycle_id = ctx.require_cycle()
    return ctx.db.query(lambda s: repo.cycle(s, cycle_id))


@beat("deploy.plan_waves")
def plan(ctx: BeatContext) -> BeatResult:
    """Record every target's current version and split the targets into waves."""
    cycle = cycle_of(ctx)
    if not cycle.validated_version:
        raise PermanentError("no validated version to deploy")
    existing = ctx.db.query(lambda s: deployment_store.waves(s, cycle.id))
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


def _apply_wave(ctx: BeatContext, deployer: Deployer, cycle: CycleRow, wave: WaveRow) -> None:
    previous: dict[str, str | None] = cycle.summary.get("previous_versions", {})
    version = str(cycle.validated_version)
    for target in wave.targets:
        row = record_intent(ctx, cycle, wave, target, "deploy", version, previous.get(target))
        move_target(ctx, deployer, row)
        ctx.log.info("target updated", target=target, version=version, wave=wave.index)
    start_bake(ctx, wave, ctx.settings.deploy.bake_s, status="baking", applied_at=ctx.clock.now())


@beat("deploy.roll_out")
def roll_out(ctx: BeatContext) -> BeatResult:
    """Apply waves in order; each bakes, then must pass its gate before the next starts."""
    cycle = cycle_of(ctx)
    deployer = ctx.deployer_factory()
    waves = ctx.db.query(lambda s: deployment_store.waves(s, cycle.id))
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
            update_wave(ctx, wave, status="applying")
            _apply_wave(ctx, deployer, cycle, wave)
        left = bake_left_s(ctx, wave)
        if left > 0:
            return BeatResult(
                wait_until=ctx.clock.now() + timedelta(seconds=left),
                wait_reason=f"baking wave {wave.index + 1}/{len(waves)}",
            )
        extensions = int(wave.gate.get("extensions", 0))
        verdict = gate_verdict(ctx, cycle, wave, waves)
        if verdict.passed is None and extensions < ctx.settings.deploy.max_bake_extensions:
            extension = max(ctx.settings.deploy.bake_s / 2, 1.0)
            start_bake(ctx, wave, extension, gate=gate_record(verdict, extensions + 1))
            return BeatResult(
                wait_until=ctx.clock.now() + timedelta(seconds=extension),
                wait_reason=f"wave {wave.index + 1}: {'; '.join(verdict.reasons)}",
            )
        if verdict.passed is None:
            verdict = GateVerdict(
                False, [*verdict.reasons, "not enough evidence after every bake extension"]
            )
        update_wave(
            ctx,
            wave,
            status="passed" if verdict.passed else "failed",
            gate=gate_record(verdict, extensions),
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
    waves = ctx.db.query(lambda s: deployment_store.waves(s, cycle.id))
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
    cycle = cycle_of(ctx)
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
