"""Phase 6, rolling back: every target this cycle touched returns to its previous version.

Each target is moved back with the same write-ahead rule as the rollout
(``target_moves``), so a rollback interrupted half way resumes without acting
twice; ``deployment.json`` then records the rollout as rolled back.
"""

from __future__ import annotations

from states.context import BeatContext, BeatResult, PermanentError
from states.deploy.beats import cycle_of, deployment_artifact
from states.deploy.target_moves import move_target, record_intent
from states.registry import beat
from storage import deployment_store


@beat("deploy.revert_targets")
def revert_targets(ctx: BeatContext) -> BeatResult:
    """Return every target this cycle touched (or may have touched) to its previous version."""
    cycle = cycle_of(ctx)
    deployer = ctx.deployer_factory()
    touched = ctx.db.query(lambda s: deployment_store.deploy_actions(s, cycle.id, "deploy"))
    waves = {w.index: w for w in ctx.db.query(lambda s: deployment_store.waves(s, cycle.id))}
    reverted = []
    for action in touched:
        if action.from_version is None:
            raise PermanentError(f"{action.target}: previous version unknown; roll it back by hand")
        row = record_intent(
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
    cycle = cycle_of(ctx)
    finals = ctx.deployer_factory().running_versions()
    ctx.artifacts.write_model(
        cycle.id, "deployment", deployment_artifact(ctx, cycle, "rolled_back", finals)
    )
    return BeatResult(output={"versions": finals}, cycle_updates={"gate_passed": False})
