"""Bringing a database made by an earlier release of schema version 1 up to date.

Version 1 has only ever grown: tables, window columns and indexes were added,
nothing was renamed or dropped, so an older file is upgraded in place when it
is opened, never recreated, and a release that predates an addition still
reads the file (it ignores what it does not know). Each addition is asked
about first and made under the write lock, asked again there, because another
process may be opening the same file; what was added is logged once, naming
the file, so an operator can see that the data directory was changed.

Anything that cannot be made this way (a column changing meaning, a table
split) needs a new ``SCHEMA_VERSION``, which ``storage.db`` refuses to open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import Index, Table, inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from storage import budget_hours
from storage.claims import BeatClaimRow
from storage.tables import WindowRow
from storage.timers import TimerRow

log = structlog.get_logger("selfheal.storage")

# Tables kept beside the one module that reads them rather than in ``tables``:
# named here so the metadata knows them wherever a file is created or upgraded.
OWN_MODULE_TABLES = (budget_hours.BudgetHourRow, BeatClaimRow, TimerRow)

# Window columns added since schema version 1 was first released, as DDL, oldest first:
# the latency sketches and templates, the watched gauges, then the per-operation figures.
WINDOW_COLUMNS_ADDED = (
    ("sketch", "'{}'"),
    ("templates", "'{}'"),
    ("new_templates", "'[]'"),
    ("gauges", "'{}'"),
    ("operations", "'{}'"),
)


@dataclass(frozen=True)
class Missing:
    """What an opened file lacks of the current schema (all empty: nothing to do)."""

    tables: list[str]
    window_columns: list[str]
    window_indexes: list[str]

    def __bool__(self) -> bool:
        return bool(self.tables or self.window_columns or self.window_indexes)


def missing(bind: Connection | Engine) -> Missing:
    """The tables, window columns and window indexes this file does not have yet."""
    found = inspect(bind)
    names = set(found.get_table_names())
    absent = sorted(set(SQLModel.metadata.tables) - names)
    if WindowRow.__tablename__ not in names:
        return Missing(absent, [], [])  # created whole, with its columns and indexes
    columns = {column["name"] for column in found.get_columns(WindowRow.__tablename__)}
    indexes = {index["name"] for index in found.get_indexes(WindowRow.__tablename__)}
    return Missing(
        absent,
        [name for name, _ in WINDOW_COLUMNS_ADDED if name not in columns],
        [str(index.name) for index in _window_indexes() if index.name not in indexes],
    )


def upgrade(connection: Connection, path: Path) -> None:
    """Add whatever ``missing`` finds, in the caller's write transaction, and log it.

    Nothing else is altered: a table is created whole (the hourly budget
    totals with their triggers and the sums of the windows already there), a
    column is added with the empty value new rows get, an index is built over
    the rows already there.
    """
    todo = missing(connection)
    if not todo:
        return
    SQLModel.metadata.create_all(connection, tables=_tables(todo.tables), checkfirst=True)
    if budget_hours.TABLE in todo.tables:
        budget_hours.install(connection)
    _add_window_columns(connection, todo.window_columns)
    for index in _window_indexes():
        if index.name in todo.window_indexes:
            index.create(connection, checkfirst=True)
    log.info(
        "database schema upgraded in place",
        path=str(path),
        tables_added=todo.tables,
        window_columns_added=todo.window_columns,
        window_indexes_added=todo.window_indexes,
    )


def _tables(names: list[str]) -> list[Table]:
    return [SQLModel.metadata.tables[name] for name in names]


def _window_indexes() -> list[Index]:
    return sorted(WindowRow.__table__.indexes, key=lambda index: str(index.name))  # type: ignore[attr-defined]


def _add_window_columns(connection: Connection, names: list[str]) -> None:
    """Add these columns with the value new rows get (empty JSON).

    Old windows then read as windows that saw no sketch, template or operation.
    """
    for name, default in WINDOW_COLUMNS_ADDED:
        if name in names:
            connection.exec_driver_sql(
                f"ALTER TABLE {WindowRow.__tablename__} ADD COLUMN {name} JSON NOT NULL DEFAULT {default}"
            )
