"""Repository functions: named reads and writes over the agent's own records.

The machine, beats, cycles, artifacts, anomalies, patterns and operator
commands live here; deployment's waves and actions in
``storage.deployment_store``; telemetry's cursors and windows in
``storage.window_store``.

Each function takes the session of the caller's transaction, so a phase can
group several of them into one atomic change (for example a transition and
the new state, or a beat's checkpoint and its output).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.tables import (
    AgentStateRow,
    AnomalyRow,
    ArtifactRow,
    BeatRunRow,
    CommandRow,
    CycleRow,
    PatternRow,
    TransitionRow,
)

__all__ = ["Session"]

# --- machine -----------------------------------------------------------------


def agent_state(session: Session, now: datetime) -> AgentStateRow:
    """The single agent-state row, created as ``idle`` on first use."""
    row = session.get(AgentStateRow, 1)
    if row is None:
        row = AgentStateRow(id=1, state="idle", updated_at=now)
        session.add(row)
        session.flush()
    return row


def record_transition(
    session: Session,
    *,
    source: str,
    dest: str,
    trigger: str,
    actor: str,
    reason: str,
    cycle_id: str | None,
    state_cycle_id: str | None,
    paused_from: str | None,
    now: datetime,
) -> TransitionRow:
    """Store the transition and move the agent state to ``dest``, in the caller's transaction.

    ``cycle_id`` is the cycle the transition belongs to; ``state_cycle_id`` the
    cycle the agent works on afterwards (None once it is back in idle).
    """
    row = TransitionRow(
        cycle_id=cycle_id,
        source=source,
        dest=dest,
        trigger=trigger,
        actor=actor,
        reason=reason,
        at=now,
    )
    session.add(row)
    session.flush()
    state = agent_state(session, now)
    state.state = dest
    state.cycle_id = state_cycle_id
    state.paused_from = paused_from
    state.entry_id = row.id or 0
    state.updated_at = now
    session.add(state)
    return row


def recent_transitions(session: Session, limit: int) -> list[TransitionRow]:
    """The newest transitions first."""
    stmt = select(TransitionRow).order_by(col(TransitionRow.id).desc()).limit(limit)
    return list(session.exec(stmt))


def cycle_transitions(session: Session, cycle_id: str) -> list[TransitionRow]:
    """Every transition of one cycle, oldest first."""
    stmt = (
        select(TransitionRow)
        .where(TransitionRow.cycle_id == cycle_id)
        .order_by(col(TransitionRow.id))
    )
    return list(session.exec(stmt))


def prune_idle_transitions(session: Session, keep: int) -> int:
    """Drop all but the newest ``keep`` transitions that belong to no cycle (idle polls)."""
    newest = select(TransitionRow.id).where(col(TransitionRow.cycle_id).is_(None))
    ids = list(session.exec(newest.order_by(col(TransitionRow.id).desc()).offset(keep)))
    if not ids:
        return 0
    session.exec(delete(TransitionRow).where(col(TransitionRow.id).in_(ids)))
    return len(ids)


# --- beats -------------------------------------------------------------------


def beat_runs(session: Session, entry_id: int) -> dict[str, BeatRunRow]:
    """Checkpoints of every beat of one phase visit, by beat id."""
    stmt = select(BeatRunRow).where(BeatRunRow.entry_id == entry_id)
    return {row.beat_id: row for row in session.exec(stmt)}


def beat_run(
    session: Session, *, entry_id: int, beat_id: str, phase: str, cycle_id: str | None
) -> BeatRunRow:
    """The checkpoint of one beat, created as pending when first asked for."""
    stmt = select(BeatRunRow).where(BeatRunRow.entry_id == entry_id, BeatRunRow.beat_id == beat_id)
    row = session.exec(stmt).first()
    if row is None:
        row = BeatRunRow(entry_id=entry_id, beat_id=beat_id, phase=phase, cycle_id=cycle_id)
        session.add(row)
        session.flush()
    return row


def cycle_beat_runs(session: Session, cycle_id: str) -> list[BeatRunRow]:
    """Every beat checkpoint of one cycle, in the order they were created."""
    stmt = select(BeatRunRow).where(BeatRunRow.cycle_id == cycle_id).order_by(col(BeatRunRow.id))
    return list(session.exec(stmt))


def prune_idle_beat_runs(session: Session, keep_entries: int) -> int:
    """Drop checkpoints of old phase visits that belonged to no cycle."""
    entries = select(BeatRunRow.entry_id).where(col(BeatRunRow.cycle_id).is_(None)).distinct()
    old = list(session.exec(entries.order_by(col(BeatRunRow.entry_id).desc()).offset(keep_entries)))
    if not old:
        return 0
    session.exec(delete(BeatRunRow).where(col(BeatRunRow.entry_id).in_(old)))
    return len(old)


# --- cycles ------------------------------------------------------------------


def cycle(session: Session, cycle_id: str) -> CycleRow:
    """One cycle; a missing id is a programming error, so it raises."""
    row = session.get(CycleRow, cycle_id)
    if row is None:
        raise KeyError(f"no cycle {cycle_id!r}")
    return row


def find_cycle(session: Session, prefix: str) -> CycleRow | None:
    """A cycle by its id or an unambiguous prefix of it."""
    exact = session.get(CycleRow, prefix)
    if exact is not None:
        return exact
    stmt = select(CycleRow).where(col(CycleRow.id).startswith(prefix)).limit(2)
    found = list(session.exec(stmt))
    return found[0] if len(found) == 1 else None


def cycles(session: Session, limit: int) -> list[CycleRow]:
    """The newest cycles first."""
    stmt = select(CycleRow).order_by(col(CycleRow.opened_at).desc()).limit(limit)
    return list(session.exec(stmt))


def cycles_opened_since(session: Session, since: datetime) -> int:
    """How many cycles opened at or after ``since`` (the daily budget)."""
    stmt = select(func.count()).select_from(CycleRow).where(CycleRow.opened_at >= since)
    return int(session.exec(stmt).one())


def last_closed_cycle(session: Session, component: str | None = None) -> CycleRow | None:
    """The most recently closed cycle, optionally for one component."""
    stmt = select(CycleRow).where(col(CycleRow.closed_at).is_not(None))
    if component is not None:
        stmt = stmt.where(CycleRow.component == component)
    return session.exec(stmt.order_by(col(CycleRow.closed_at).desc()).limit(1)).first()


def summary_update(row: CycleRow, **fields: Any) -> None:
    """Merge fields into a cycle's summary (a new dict, so the JSON column is marked dirty)."""
    row.summary = {**row.summary, **fields}


# --- artifacts -----------------------------------------------------------------


def record_artifact(
    session: Session, *, cycle_id: str, kind: str, path: str, sha256: str, size: int, now: datetime
) -> None:
    """Record (or replace) where a cycle's artifact of ``kind`` was written."""
    stmt = select(ArtifactRow).where(ArtifactRow.cycle_id == cycle_id, ArtifactRow.kind == kind)
    row = session.exec(stmt).first() or ArtifactRow(
        cycle_id=cycle_id, kind=kind, path=path, sha256=sha256, size=size, created_at=now
    )
    row.path, row.sha256, row.size, row.created_at = path, sha256, size, now
    session.add(row)


def artifacts(session: Session, cycle_id: str) -> list[ArtifactRow]:
    """A cycle's artifacts in the order they were written."""
    stmt = select(ArtifactRow).where(ArtifactRow.cycle_id == cycle_id).order_by(col(ArtifactRow.id))
    return list(session.exec(stmt))


# --- anomalies -----------------------------------------------------------------


def open_anomalies(session: Session, component: str | None = None) -> list[AnomalyRow]:
    """Open anomalies, oldest first."""
    stmt = select(AnomalyRow).where(AnomalyRow.status == "open")
    if component is not None:
        stmt = stmt.where(AnomalyRow.component == component)
    return list(session.exec(stmt.order_by(col(AnomalyRow.id))))


def last_closed_anomaly(session: Session, fingerprint: str) -> AnomalyRow | None:
    """The most recently closed anomaly with ``fingerprint``, if any."""
    stmt = select(AnomalyRow).where(
        AnomalyRow.fingerprint == fingerprint, AnomalyRow.status == "closed"
    )
    return session.exec(stmt.order_by(col(AnomalyRow.closed_at).desc()).limit(1)).first()


def cycle_anomalies(session: Session, cycle_id: str) -> list[AnomalyRow]:
    """Anomalies attached to one cycle."""
    stmt = select(AnomalyRow).where(AnomalyRow.cycle_id == cycle_id).order_by(col(AnomalyRow.id))
    return list(session.exec(stmt))


# --- patterns ------------------------------------------------------------------


def pattern(session: Session, signature: str) -> PatternRow | None:
    """The pattern learned for ``signature``, if any."""
    return session.get(PatternRow, signature)


def patterns(session: Session) -> list[PatternRow]:
    """Every pattern, most trusted first."""
    stmt = select(PatternRow).order_by(col(PatternRow.confidence).desc(), col(PatternRow.signature))
    return list(session.exec(stmt))


# --- operator commands ----------------------------------------------------------


def queue_command(
    session: Session,
    *,
    verb: str,
    reason: str,
    target_state: str | None,
    force: bool,
    requested_by: str,
    now: datetime,
) -> CommandRow:
    """Queue an operator command for the daemon's next tick (transitions record 'operator')."""
    row = CommandRow(
        verb=verb,
        reason=reason,
        target_state=target_state,
        force=force,
        requested_by=requested_by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def queued_commands(session: Session) -> list[CommandRow]:
    """Commands not yet applied, in the order they were queued."""
    stmt = select(CommandRow).where(CommandRow.status == "queued").order_by(col(CommandRow.id))
    return list(session.exec(stmt))


def command(session: Session, command_id: int) -> CommandRow | None:
    """One command by id."""
    return session.get(CommandRow, command_id)
