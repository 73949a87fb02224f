"""Keeping the data directory bounded: closed cycles beyond the newest ``keep`` are pruned.

A cycle leaves rows in several tables and a directory of artifacts. Once it
is closed, older than the newest ``keep`` closed cycles and opened before
``opened_before``, every row of it goes in one transaction, then its
directory. Rows go first: a crash in between leaves a directory that no cycle
row names, which the next pruning removes, whereas the other order could
leave rows naming files that are gone. The newest closed cycle of each
component is always kept (its close time starts the component's cooldown).
Anomalies that never became a cycle are bounded the same way once closed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage import claims, timers
from storage.db import Database
from storage.tables import (
    AnomalyRow,
    ArtifactRow,
    BeatRunRow,
    CycleRow,
    DeployActionRow,
    TransitionRow,
    WaveRow,
)

_CYCLE_TABLES = (TransitionRow, BeatRunRow, ArtifactRow, AnomalyRow, DeployActionRow, WaveRow)


@dataclass(frozen=True)
class Pruned:
    """What one pruning removed."""

    cycles: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    anomalies: int = 0

    def __bool__(self) -> bool:
        return bool(self.cycles or self.directories or self.anomalies)


def prunable_cycles(session: Session, keep: int, opened_before: datetime) -> list[str]:
    """Closed cycles beyond the newest ``keep`` opened before ``opened_before``, except each
    component's newest closed one."""
    stmt = (
        select(CycleRow.id, CycleRow.component, CycleRow.opened_at)
        .where(col(CycleRow.closed_at).is_not(None))
        .order_by(col(CycleRow.opened_at).desc(), col(CycleRow.id).desc())
    )
    newest_of_component: set[str] = set()
    old = []
    for index, (cycle_id, component, opened_at) in enumerate(session.exec(stmt)):
        if component not in newest_of_component:
            newest_of_component.add(component)
        elif index >= keep and opened_at < opened_before:
            old.append(cycle_id)
    return old


def delete_cycles(session: Session, cycle_ids: list[str]) -> None:
    """Every row of these cycles: transitions, checkpoints, claims, artifacts, waves, countdowns."""
    if not cycle_ids:
        return
    entries = session.exec(
        select(BeatRunRow.entry_id, BeatRunRow.beat_id).where(
            col(BeatRunRow.cycle_id).in_(cycle_ids)
        )
    )
    # Keyed as states.progression.beat_key and states.deploy.wave_gate.bake_key write them.
    keys = [f"beat:{entry}:{beat}" for entry, beat in entries]
    claims.release_all(session, keys)
    waves = session.exec(
        select(WaveRow.cycle_id, WaveRow.index).where(col(WaveRow.cycle_id).in_(cycle_ids))
    )
    keys += [f"bake:{cycle_id}:{index}" for cycle_id, index in waves]
    timers.drop_timers(session, keys)
    for table in _CYCLE_TABLES:
        session.exec(delete(table).where(col(table.cycle_id).in_(cycle_ids)))
    session.exec(delete(CycleRow).where(col(CycleRow.id).in_(cycle_ids)))


def _unattached_beyond(session: Session, keep: int) -> list[int]:
    stmt = (
        select(AnomalyRow.id)
        .where(AnomalyRow.status == "closed", col(AnomalyRow.cycle_id).is_(None))
        .order_by(col(AnomalyRow.id).desc())
        .offset(keep)
    )
    return [i for i in session.exec(stmt) if i is not None]


def prune_unattached_anomalies(session: Session, keep: int) -> int:
    """Closed anomalies that never became a cycle, beyond the newest ``keep``."""
    ids = _unattached_beyond(session, keep)
    if ids:
        session.exec(delete(AnomalyRow).where(col(AnomalyRow.id).in_(ids)))
    return len(ids)


def prune_cycles(db: Database, cycles_dir: Path, keep: int, opened_before: datetime) -> Pruned:
    """Prune rows, then directories, of closed cycles beyond the newest ``keep``."""

    def rows(session: Session) -> tuple[list[str], int, set[str]]:
        old = prunable_cycles(session, keep, opened_before)
        delete_cycles(session, old)
        anomalies = prune_unattached_anomalies(session, keep)
        return old, anomalies, set(session.exec(select(CycleRow.id)))

    def nothing_to_do(session: Session) -> set[str] | None:
        if prunable_cycles(session, keep, opened_before) or _unattached_beyond(session, keep):
            return None
        return set(session.exec(select(CycleRow.id)))

    # Most calls find nothing: look first, and take the write lock only when needed.
    known = db.query(nothing_to_do)
    old: list[str] = []
    anomalies = 0
    if known is None:
        old, anomalies, known = db.transact(rows)
    removed = []
    if cycles_dir.is_dir():
        for directory in sorted(cycles_dir.iterdir()):
            if directory.is_dir() and directory.name not in known:
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(str(directory))
    return Pruned(cycles=old, directories=removed, anomalies=anomalies)
