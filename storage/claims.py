"""Claims on running beat attempts: which process runs one, and how often such a process died.

Keyed like beat countdowns (``beat:<entry>:<beat>``) and written in the
caller's transaction, together with the checkpoint that marks the beat running.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Field, Session, SQLModel, col

from storage.columns import at as _at


class BeatClaimRow(SQLModel, table=True):
    """Which process runs a beat's current attempt, and how often that attempt's process died.

    After a restart this tells an attempt whose process was killed (the host, the
    OOM killer, an operator) from one its own process abandoned (an interrupt
    that escaped the handler): only the latter is the handler's failure.
    """

    __tablename__ = "beat_claim"
    key: str = Field(primary_key=True)
    owner: str
    kills: int = 0
    claimed_at: datetime = _at()


def claim(session: Session, key: str) -> BeatClaimRow | None:
    """The claim on the attempt under ``key``, if one is running or was cut short."""
    return session.get(BeatClaimRow, key)


def set_claim(session: Session, key: str, *, owner: str, kills: int, now: datetime) -> None:
    """Record that ``owner`` runs the attempt, after ``kills`` deaths of earlier owners."""
    row = session.get(BeatClaimRow, key) or BeatClaimRow(key=key, owner=owner, claimed_at=now)
    row.owner, row.kills, row.claimed_at = owner, kills, now
    session.add(row)


def release(session: Session, key: str) -> None:
    """The attempt ended with a checkpoint: forget the claim."""
    row = session.get(BeatClaimRow, key)
    if row is not None:
        session.delete(row)


def release_all(session: Session, keys: list[str]) -> int:
    """Forget the claims under ``keys``; returns how many there were."""
    if not keys:
        return 0
    result = session.exec(delete(BeatClaimRow).where(col(BeatClaimRow.key).in_(keys)))
    return int(result.rowcount or 0)
