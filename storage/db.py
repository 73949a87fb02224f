"""Opening the database safely: WAL, busy timeout, schema version, corruption check.

SQLite is the source of truth for the machine, so opening it must never
silently recreate or half-upgrade a file: a database from another schema
version or a damaged file is refused with a message that says what to do.
Writes use ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout
instead of failing on a lock upgrade, and the few transient lock errors that
remain are retried by name, a bounded number of times.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, create_engine, select

from storage import budget_hours, migrations, tables

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
LOCK_RETRIES = 5

T = TypeVar("T")


class StorageError(Exception):
    """The database cannot be used as it is; the message says why and what to do."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transaction that met a transient lock."""

    attempts: int = LOCK_RETRIES
    first_delay_s: float = 0.05
    max_delay_s: float = 1.0


def is_transient_lock_error(exc: BaseException) -> bool:
    """The only errors worth retrying: SQLite's busy/locked conditions."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def retrying(policy: RetryPolicy, action: Callable[[], T]) -> T:
    """Run ``action``, retrying transient lock errors (and nothing else) as ``policy`` allows."""
    delay = policy.first_delay_s
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except OperationalError as exc:
            if not is_transient_lock_error(exc) or attempt == policy.attempts:
                raise
            time.sleep(delay)
            delay = min(delay * 2, policy.max_delay_s)
    raise AssertionError("unreachable: the loop returns or raises")


def _configure_connection(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # Let SQLAlchemy's "begin" event decide how transactions start.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _make_engine(path: Path, *, immediate: bool) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    event.listen(engine, "connect", _configure_connection)
    begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin_sql)

    return engine


class Database:
    """One SQLite file: ``write()`` for transactions that change state, ``read()`` for the rest."""

    def __init__(self, path: Path, retry: RetryPolicy | None = None) -> None:
        self.path = path
        self.retry = retry or RetryPolicy()
        self._writer = _make_engine(path, immediate=True)
        self._reader = _make_engine(path, immediate=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        with Session(self._writer, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only view; never holds the write lock."""
        # Closing (not rolling back) keeps loaded rows readable after the block;
        # the pool still ends the read transaction when the connection returns.
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    def transact(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a write transaction, retrying transient lock errors with a bound."""
        return self._retrying(self.write, work)

    def query(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a read transaction, retrying transient lock errors with a bound."""
        return self._retrying(self.read, work)

    def _retrying(
        self,
        session_of: Callable[[], AbstractContextManager[Session]],
        work: Callable[[Session], T],
    ) -> T:
        def attempt() -> T:
            with session_of() as session:
                return work(session)

        return retrying(self.retry, attempt)

    def dispose(self) -> None:
        """Close every pooled connection (before fork, exit, or in tests)."""
        self._writer.dispose()
        self._reader.dispose()


def _check_integrity(path: Path) -> None:
    try:
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"{path} is not a usable SQLite database ({exc}). It was left untouched; "
            "restore it from a backup or move it aside to start with an empty state."
        ) from exc
    if [r[0] for r in rows] != ["ok"]:
        problems = "; ".join(str(r[0]) for r in rows[:3])
        raise StorageError(
            f"{path} failed SQLite's integrity check: {problems}. It was left untouched; "
            "restore it from a backup or move it aside to start with an empty state."
        )


def _initialise_or_check_version(db: Database) -> None:
    if "schema_info" not in inspect(db._writer).get_table_names():
        # Under the write lock, so a process opening the new file at the same time
        # waits and then sees the tables and their version row together.
        with db.write() as session:
            connection = session.connection()
            existing = set(inspect(connection).get_table_names())
            if not existing:
                SQLModel.metadata.create_all(connection)
                budget_hours.install(connection)
                session.add(tables.SchemaInfo(version=SCHEMA_VERSION, created_at=datetime.now(UTC)))
                return
            if "schema_info" not in existing:
                raise StorageError(
                    f"{db.path} has tables but no schema_info row; it was not created by selfheal "
                    "or is damaged. Point --data-dir at another directory."
                )
    with db.read() as session:
        info = session.exec(select(tables.SchemaInfo)).first()
    if info is None:
        raise StorageError(f"{db.path} has an empty schema_info table; the database is damaged.")
    if info.version != SCHEMA_VERSION:
        raise StorageError(
            f"{db.path} has schema version {info.version}, this selfheal expects "
            f"{SCHEMA_VERSION}. Run the selfheal release that matches it, or move the data "
            "directory aside to start afresh."
        )
    _add_missing_tables(db)


def _add_missing_tables(db: Database) -> None:
    """Upgrade a file made by an earlier release of this schema version (``storage.migrations``)."""
    if not migrations.missing(db._writer):
        return
    with db.write() as session:
        # Asked again under the write lock: another process may have just added them.
        migrations.upgrade(session.connection(), db.path)


def open_database(path: Path) -> Database:
    """Open (creating if absent) the database at ``path`` after checking it is sound."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        _check_integrity(path)
    db = Database(path)
    try:
        # A process opening a new file while another creates it can meet a lock
        # that SQLite reports without waiting (switching the file to WAL).
        retrying(db.retry, lambda: _initialise_or_check_version(db))
    except SADatabaseError as exc:
        db.dispose()
        raise StorageError(f"{path} could not be opened: {exc.orig}") from exc
    except StorageError:
        db.dispose()
        raise
    return db
