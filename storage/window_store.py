"""Telemetry's reads and writes: source cursors, template-miner state and metric windows.

Ingestion, closing, retention and every detector go through these. They are
kept apart from the repository of the machine's own records (cycles, beats,
deployments) because they are the hot path: each is shaped for the batch it
serves (one statement for many windows, only the columns a step needs), and
like every repository function each takes the caller's session, so a poll
stores its windows, cursors and miner state in one transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, insert, text, update
from sqlalchemy import select as select_columns
from sqlalchemy.engine import Dialect
from sqlmodel import Session, col, select

from storage.tables import UNEVALUATED, CursorRow, TemplateStateRow, WindowRow

_IDS_PER_STATEMENT = 500  # well below SQLite's limit on bound parameters


def cursors(session: Session) -> dict[str, CursorRow]:
    """Every telemetry cursor by key."""
    return {row.key: row for row in session.exec(select(CursorRow))}


def note_source_failure(
    session: Session, *, key: str, source: str, path: str, reason: str, now: datetime
) -> None:
    """Count a failed read of a source on its cursor row (created if need be), so that
    ``selfheal status`` shows it; the row's position and time stay as they were."""
    cursor = session.get(CursorRow, key) or CursorRow(
        key=key, source=source, path=path, updated_at=now
    )
    counts = dict(cursor.rejected)
    counts[reason] = counts.get(reason, 0) + 1
    cursor.rejected = counts
    session.add(cursor)


def template_state(session: Session, source: str) -> dict[str, Any] | None:
    """The stored template-miner state of one source, if it has mined anything."""
    row = session.get(TemplateStateRow, source)
    return None if row is None else dict(row.state)


def store_template_state(
    session: Session, source: str, state: dict[str, Any], templates: int, now: datetime
) -> None:
    """Replace one source's template-miner state, in the caller's transaction."""
    row = session.get(TemplateStateRow, source) or TemplateStateRow(source=source, updated_at=now)
    row.state, row.templates, row.updated_at = state, templates, now
    session.add(row)


def windows_for_keys(
    session: Session, keys: Sequence[tuple[str, str, datetime]]
) -> dict[tuple[str, str, datetime], WindowRow]:
    """The stored windows among (component, instance, start) keys."""
    if not keys:
        return {}
    starts = {k[2] for k in keys}
    stmt = select(WindowRow).where(col(WindowRow.start).in_(starts))
    wanted = set(keys)
    found = {}
    for row in session.exec(stmt):
        key = (row.component, row.instance, row.start)
        if key in wanted:
            found[key] = row
    return found


def insert_windows(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new windows (column values by name, the same names in every row) in one batch."""
    _execute_batch(session, "insert", rows)


def _execute_batch(session: Session, kind: str, rows: Sequence[dict[str, Any]]) -> None:
    """Run one of the batched statements (``_STATEMENTS``) once per row, in one call.

    The rows reach the driver as tuples, each value converted by its
    column type's own bind processor (``_BatchPlan``): the text SQLAlchemy's
    executemany stores, without its per-row, per-parameter bookkeeping, which
    cost about a sixth of inserting a large poll's windows.
    """
    if not rows:
        return
    connection = session.connection()
    plan = _batch_plan(connection.dialect, kind, tuple(rows[0]))
    connection.exec_driver_sql(plan.sql, [plan.values(row) for row in rows])


@dataclass(frozen=True, slots=True)
class _BatchPlan:
    """One compiled statement: per placeholder, the row's value by name through its type's
    bind processor, or a value fixed for every row (a column default the rows leave out, a
    constant of the statement), converted once."""

    sql: str
    slots: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]

    def values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            (row[name] if convert is None else convert(row[name])) if name is not None else value
            for name, value, convert in self.slots
        )


def _closing() -> Any:
    """Closing windows: their statistics, the closed flag, and their latencies dropped."""
    table = WindowRow.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.id == bindparam("window_id"))
        .values(
            error_rate=bindparam("error_rate"),
            p50=bindparam("p50"),
            p95=bindparam("p95"),
            p99=bindparam("p99"),
            health=bindparam("health"),
            closed=True,
            samples=[],
            sketch={},
        )
    )


_STATEMENTS: Final[dict[str, Callable[[], Any]]] = {
    "insert": lambda: insert(WindowRow.__table__),  # type: ignore[attr-defined]
    "close": _closing,
}


@functools.lru_cache(maxsize=8)
def _batch_plan(dialect: Dialect, kind: str, names: tuple[str, ...]) -> _BatchPlan:
    compiled = _STATEMENTS[kind]().compile(dialect=dialect, column_keys=list(names))
    defaults = {column.key: column.default for column in compiled.insert_prefetch}
    slots: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
    for key in compiled.positiontup or ():
        bind = compiled.binds[key]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if key in names:
            slots.append((key, None, convert))
            continue
        value = bind.effective_value
        if key in defaults:
            default = defaults[key]
            if default is None or not default.is_scalar:
                raise ValueError(f"window column {key!r} has no value and no constant default")
            value = default.arg
        slots.append((None, value if convert is None else convert(value), None))
    return _BatchPlan(compiled.string, tuple(slots))


@dataclass(frozen=True, slots=True)
class OpenWindowCounts:
    """What closing an open window needs besides its latencies."""

    id: int
    component: str
    instance: str
    start: datetime
    count: int
    errors: int


def open_window_counts(session: Session) -> list[OpenWindowCounts]:
    """Every open window's key and counts, without its latencies (the large columns)."""
    stmt = select_columns(
        col(WindowRow.id),
        col(WindowRow.component),
        col(WindowRow.instance),
        col(WindowRow.start),
        col(WindowRow.count),
        col(WindowRow.errors),
    ).where(col(WindowRow.closed).is_(False))
    rows = session.connection().execute(stmt)
    return [OpenWindowCounts(*row) for row in rows]  # type: ignore[arg-type]  # stored: an id


def window_latencies(
    session: Session, ids: Sequence[int]
) -> dict[int, tuple[list[float], dict[str, Any]]]:
    """The samples and sketch of each window among ``ids``, by id."""
    found: dict[int, tuple[list[float], dict[str, Any]]] = {}
    for at in range(0, len(ids), _IDS_PER_STATEMENT):
        stmt = select_columns(
            col(WindowRow.id), col(WindowRow.samples), col(WindowRow.sketch)
        ).where(col(WindowRow.id).in_(ids[at : at + _IDS_PER_STATEMENT]))
        found.update(
            (i, (samples, sketch)) for i, samples, sketch in session.connection().execute(stmt)
        )
    return found


def store_closed_windows(session: Session, closed: Sequence[dict[str, Any]]) -> None:
    """Mark windows closed with their statistics (keys ``window_id``, ``error_rate``,
    ``p50``, ``p95``, ``p99``, ``health``), dropping their samples, in one batch."""
    _execute_batch(session, "close", closed)


def open_windows(session: Session) -> list[WindowRow]:
    """Windows still accepting records."""
    return list(session.exec(select(WindowRow).where(col(WindowRow.closed).is_(False))))


def unevaluated_windows(session: Session) -> list[WindowRow]:
    """Closed all-instance windows detection has not looked at yet, oldest first."""
    stmt = select(WindowRow).where(text(UNEVALUATED)).order_by(col(WindowRow.start))
    return list(session.exec(stmt))


def component_windows(
    session: Session,
    component: str,
    *,
    instance: str | None = "",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    closed_only: bool = True,
) -> list[WindowRow]:
    """Windows of one component in time order (``instance=None`` for every instance)."""
    stmt = select(WindowRow).where(WindowRow.component == component)
    if instance is not None:
        stmt = stmt.where(WindowRow.instance == instance)
    if closed_only:
        stmt = stmt.where(col(WindowRow.closed).is_(True))
    if since is not None:
        stmt = stmt.where(WindowRow.start >= since)
    if until is not None:
        stmt = stmt.where(WindowRow.start < until)
    if limit is not None:
        rows = list(session.exec(stmt.order_by(col(WindowRow.start).desc()).limit(limit)))
        return rows[::-1]
    return list(session.exec(stmt.order_by(col(WindowRow.start))))


def latest_windows(session: Session) -> dict[str, WindowRow]:
    """The newest closed all-instance window of every component."""
    newest = (
        select(WindowRow.component, func.max(WindowRow.start))
        .where(col(WindowRow.closed).is_(True), WindowRow.instance == "")
        .group_by(WindowRow.component)
    )
    result = {}
    for component, start in session.exec(newest):
        stmt = select(WindowRow).where(
            WindowRow.component == component, WindowRow.instance == "", WindowRow.start == start
        )
        row = session.exec(stmt).first()
        if row is not None:
            result[component] = row
    return result


def prune_windows(session: Session, before: datetime) -> int:
    """Drop closed windows that started before ``before`` (retention)."""
    stmt = delete(WindowRow).where(col(WindowRow.closed).is_(True), col(WindowRow.start) < before)
    result = session.exec(stmt)
    return int(result.rowcount or 0)
