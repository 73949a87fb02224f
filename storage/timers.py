"""Durable countdowns: a wait stored as a duration on a monotonic clock, not a wall-time deadline.

Rows are keyed by what waits (``beat:<entry>:<beat>``, ``bake:<cycle>:<wave>``)
and read and written in the caller's transaction, so a countdown starts in the
same commit as the checkpoint or wave change that needs it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Field, Session, SQLModel, col

from storage.columns import at as _at


class TimerRow(SQLModel, table=True):
    """A durable countdown (a bake, a beat's wait): how long, from which monotonic reading
    of which boot. Wall time can jump; these readings cannot, within one boot."""

    __tablename__ = "timer"
    key: str = Field(primary_key=True)
    duration_s: float
    started_mono: float
    boot_id: str
    started_at: datetime = _at()


def timer(session: Session, key: str) -> TimerRow | None:
    """The countdown stored under ``key``, if any."""
    return session.get(TimerRow, key)


def set_timer(
    session: Session,
    key: str,
    *,
    duration_s: float,
    started_mono: float,
    boot_id: str,
    now: datetime,
) -> None:
    """Store (or restart) the countdown under ``key``."""
    row = session.get(TimerRow, key) or TimerRow(
        key=key, duration_s=duration_s, started_mono=started_mono, boot_id=boot_id, started_at=now
    )
    row.duration_s, row.started_mono, row.boot_id, row.started_at = (
        duration_s,
        started_mono,
        boot_id,
        now,
    )
    session.add(row)


def drop_timer(session: Session, key: str) -> None:
    """Forget the countdown under ``key`` (absent is fine)."""
    row = session.get(TimerRow, key)
    if row is not None:
        session.delete(row)


def drop_timers(session: Session, keys: list[str]) -> int:
    """Forget every countdown under ``keys``; returns how many there were."""
    if not keys:
        return 0
    result = session.exec(delete(TimerRow).where(col(TimerRow.key).in_(keys)))
    return int(result.rowcount or 0)
