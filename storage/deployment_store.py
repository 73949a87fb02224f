"""Deployment's reads: a cycle's waves and its write-ahead deploy and rollback actions.

Rollout, rollback, crash recovery (``agent.reaping``) and diagnosis (the
agent's own deployments as change events) read these; they are kept apart
from ``storage.repository`` so that each module holds one family of rows.
Like every repository function each takes the caller's session.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from storage.tables import CycleRow, DeployActionRow, WaveRow


def waves(session: Session, cycle_id: str) -> list[WaveRow]:
    """A cycle's waves in order."""
    stmt = select(WaveRow).where(WaveRow.cycle_id == cycle_id).order_by(col(WaveRow.index))
    return list(session.exec(stmt))


def deploy_actions(
    session: Session, cycle_id: str, action: str | None = None
) -> list[DeployActionRow]:
    """A cycle's deploy (and rollback) records in the order they were written."""
    stmt = select(DeployActionRow).where(DeployActionRow.cycle_id == cycle_id)
    if action is not None:
        stmt = stmt.where(DeployActionRow.action == action)
    return list(session.exec(stmt.order_by(col(DeployActionRow.id))))


def deploy_action(
    session: Session, *, cycle_id: str, action: str, wave: int, target: str
) -> DeployActionRow | None:
    """The write-ahead record of one target in one wave, if written."""
    stmt = select(DeployActionRow).where(
        DeployActionRow.cycle_id == cycle_id,
        DeployActionRow.action == action,
        DeployActionRow.wave == wave,
        DeployActionRow.target == target,
    )
    return session.exec(stmt).first()


def agent_deployments(session: Session, since: datetime | None = None) -> list[DeployActionRow]:
    """Deployments the agent itself confirmed, oldest first (change events for diagnosis)."""
    stmt = select(DeployActionRow).where(DeployActionRow.status == "done")
    if since is not None:
        stmt = stmt.where(col(DeployActionRow.done_at) >= since)
    return list(session.exec(stmt.order_by(col(DeployActionRow.id))))


def unconfirmed_deploy_actions(session: Session) -> list[DeployActionRow]:
    """Intents of open cycles whose change was never confirmed (a run died in between)."""
    stmt = (
        select(DeployActionRow)
        .join(CycleRow, col(CycleRow.id) == col(DeployActionRow.cycle_id))
        .where(DeployActionRow.status != "done", col(CycleRow.closed_at).is_(None))
        .order_by(col(DeployActionRow.id))
    )
    return list(session.exec(stmt))
