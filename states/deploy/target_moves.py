"""Moving one target to a version exactly once, across crashes and retries.

Exactly-once per target rests on two rules: an intent row is written before a
target is touched, and whether the change happened is always asked of the
target itself. A resumed rollout (or rollback) therefore never deploys a target
that already runs the version, and never forgets one that was half done.
"""

from __future__ import annotations

from states import failpoints
from states.context import BeatContext, TemporaryError
from states.deploy.deployers import Deployer, DeployError
from storage import deployment_store
from storage.repository import Session
from storage.tables import CycleRow, DeployActionRow, WaveRow


def record_intent(
    ctx: BeatContext,
    cycle: CycleRow,
    wave: WaveRow,
    target: str,
    action: str,
    to_version: str,
    from_version: str | None,
) -> DeployActionRow:
    """The intent row of moving ``target`` in ``wave`` (written once; a resume finds it)."""

    def write(session: Session) -> DeployActionRow:
        row = deployment_store.deploy_action(
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
        stored = deployment_store.deploy_action(
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
