"""The daemon and many operator commands on one SQLite file: no lock error reaches a user.

A real daemon subprocess ingests a log that grows every 20 ms while four
threads run ``selfheal status``, ``history`` and ``override pause|resume``
back to back, each call a new process on the same database
(``tests/support/stress.py``). Every call must succeed without showing
"database is locked", and every queued command must end applied or refused,
having moved the machine exactly once or not at all. The retry policy itself
is checked against a real lock held by another connection: transient lock
errors are retried, a bounded number of times, and nothing else is.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from storage import db as storage_db
from storage.db import Database, RetryPolicy, open_database
from tests.support.stress import StressReport, run_stress

SECONDS = 25.0
WORKERS = 4


@pytest.fixture(scope="module")
def stress() -> Iterator[StressReport]:
    # On the disk, not in the suite's in-memory scratch (tests/conftest.py): commits that wait
    # on fsync hold the write lock as long as they do in production, and that is the stress.
    root = Path(tempfile.mkdtemp(prefix="selfheal-stress-"))
    try:
        yield run_stress(root, seconds=SECONDS, workers=WORKERS)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_daemon_kept_writing_while_the_cli_ran(stress: StressReport) -> None:
    assert stress.windows > 0
    assert len(stress.calls) >= 2 * WORKERS
    assert {c.verb for c in stress.calls} >= {"status", "pause", "resume"}
    assert stress.daemon_exit == 0
    assert stress.daemon_ticks_failed == 0


def test_no_lock_error_reaches_a_user(stress: StressReport) -> None:
    assert [(c.verb, c.exit_code, c.output[-300:]) for c in stress.failed_calls()] == []
    assert stress.lock_errors_seen_by_users() == 0


def test_every_queued_command_is_applied_or_refused_exactly_once(stress: StressReport) -> None:
    queued = [c for c in stress.calls if c.queued is not None]
    assert queued
    assert len({c.queued for c in queued}) == len(queued)
    assert len(stress.commands) == len(queued)
    assert stress.commands_not_applied_once() == []


# --- the retry policy, against a real lock ---------------------------------------------------------


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections give up waiting for a lock after 50 ms, so the retries are what waits."""
    monkeypatch.setattr(storage_db, "BUSY_TIMEOUT_MS", 50)


@pytest.fixture
def database(tmp_path: Path, short_busy_timeout: None) -> Iterator[Database]:
    opened = open_database(tmp_path / "selfheal.db")
    opened.dispose()
    found = Database(tmp_path / "selfheal.db", RetryPolicy(attempts=6, first_delay_s=0.05))
    yield found
    found.dispose()


def _hold_write_lock(path: Path, released: threading.Event) -> threading.Thread:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE schema_info SET version = version")

    def release_later() -> None:
        released.wait(30)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=release_later)
    thread.start()
    return thread


def test_a_transient_lock_is_retried_until_the_holder_lets_go(database: Database) -> None:
    released = threading.Event()
    holder = _hold_write_lock(database.path, released)
    attempts = []

    def work(session: object) -> int:
        attempts.append(1)
        if len(attempts) == 2:
            released.set()  # the holder commits while we back off
        return int(session.execute(text("SELECT version FROM schema_info")).scalar_one())  # type: ignore[attr-defined]

    try:
        assert database.transact(work) == storage_db.SCHEMA_VERSION
    finally:
        released.set()
        holder.join()
    assert 2 <= len(attempts) <= database.retry.attempts


def test_a_lock_held_past_every_retry_is_reported_not_waited_on_forever(
    database: Database,
) -> None:
    released = threading.Event()
    holder = _hold_write_lock(database.path, released)
    attempts = []

    def work(session: object) -> None:
        attempts.append(1)
        session.execute(text("SELECT 1"))  # type: ignore[attr-defined]  # BEGIN IMMEDIATE waits here

    try:
        with pytest.raises(OperationalError, match="database is locked"):
            database.transact(work)
    finally:
        released.set()
        holder.join()
    assert len(attempts) == database.retry.attempts


def test_other_database_errors_are_not_retried(database: Database) -> None:
    attempts = []

    def work(session: object) -> None:
        attempts.append(1)
        session.execute(text("SELECT * FROM no_such_table"))  # type: ignore[attr-defined]

    with pytest.raises(OperationalError, match="no such table"):
        database.transact(work)
    assert attempts == [1]
