"""The SQLite file the machine lives in: opened safely, refused when wrong, written atomically.

Real database files in tmp_path; damaged files are made by writing garbage or
cutting a real database short; concurrency is real processes writing the same
file at once.
"""

from __future__ import annotations

import hashlib
import select
import sqlite3
import subprocess
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col
from sqlmodel import select as sql_select
from structlog.testing import capture_logs

from storage import repository as repo
from storage import window_store
from storage.db import BUSY_TIMEOUT_MS, SCHEMA_VERSION, Database, StorageError, open_database
from storage.tables import AgentStateRow, TransitionRow, WindowRow
from tests.operator_support import PY, REPO, cli_env

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE_S = 60.0
WINDOW = timedelta(seconds=60)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "selfheal.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    opened = open_database(db_path)
    yield opened
    opened.dispose()


def fingerprint(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` by name, with a hash of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def pragma(database: Database, name: str, *, write: bool) -> object:
    def ask(session: repo.Session) -> object:
        return session.connection().exec_driver_sql(f"PRAGMA {name}").scalar()

    return database.transact(ask) if write else database.query(ask)


class TestConnectionSettings:
    @pytest.mark.parametrize("write", [False, True], ids=["reader", "writer"])
    def test_wal_mode_and_the_busy_timeout_are_set(self, db: Database, write: bool) -> None:
        assert pragma(db, "journal_mode", write=write) == "wal"
        assert pragma(db, "busy_timeout", write=write) == BUSY_TIMEOUT_MS
        assert BUSY_TIMEOUT_MS >= 1000

    def test_the_file_itself_is_in_wal_mode_for_any_other_reader(
        self, db: Database, db_path: Path
    ) -> None:
        conn = sqlite3.connect(db_path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT version FROM schema_info").fetchall() == [(SCHEMA_VERSION,)]
        finally:
            conn.close()


class TestRefusedFiles:
    def test_another_schema_version_is_refused_naming_both_versions(
        self, db: Database, db_path: Path
    ) -> None:
        db.dispose()
        conn = sqlite3.connect(db_path)
        with conn:
            conn.execute("UPDATE schema_info SET version = ?", (SCHEMA_VERSION + 98,))
        conn.close()
        before = fingerprint(db_path.parent)

        with pytest.raises(StorageError) as raised:
            open_database(db_path)

        message = str(raised.value)
        assert f"schema version {SCHEMA_VERSION + 98}" in message
        assert f"expects {SCHEMA_VERSION}" in message
        assert str(db_path) in message
        assert fingerprint(db_path.parent) == before

    def test_garbage_bytes_are_detected_at_open_and_left_untouched(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True)
        db_path.write_bytes(b"this is not a database\n" + bytes(range(256)) * 64)
        before = fingerprint(db_path.parent)

        with pytest.raises(StorageError) as raised:
            open_database(db_path)

        assert "not a usable SQLite database" in str(raised.value)
        assert str(db_path) in str(raised.value)
        assert fingerprint(db_path.parent) == before

    def test_a_truncated_real_database_is_detected_at_open_and_left_untouched(
        self, db: Database, db_path: Path
    ) -> None:
        def fill(session: repo.Session) -> None:
            for i in range(200):
                repo.queue_command(
                    session,
                    verb="pause",
                    reason=f"filler {i} " + "x" * 300,
                    target_state=None,
                    force=False,
                    requested_by="test",
                    now=NOW,
                )

        db.transact(fill)
        db.dispose()
        data = db_path.read_bytes()
        assert len(data) > 16 * 4096
        db_path.write_bytes(data[: len(data) // 2 // 4096 * 4096])
        before = fingerprint(db_path.parent)

        with pytest.raises(StorageError) as raised:
            open_database(db_path)

        assert str(db_path) in str(raised.value)
        assert "left untouched" in str(raised.value)
        assert fingerprint(db_path.parent) == before

    def test_a_database_made_by_something_else_is_refused(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True)
        conn = sqlite3.connect(db_path)
        with conn:
            conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        conn.close()

        with pytest.raises(StorageError) as raised:
            open_database(db_path)

        assert "not created by selfheal" in str(raised.value)
        conn = sqlite3.connect(db_path)
        try:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        finally:
            conn.close()
        assert tables == [("orders",)]


def window_rows(count: int, *, judged: int) -> list[dict[str, object]]:
    """``count`` closed one-minute windows of one component, the first ``judged`` judged."""
    start = NOW - count * WINDOW
    return [
        WindowRow(
            component="api",
            start=start + i * WINDOW,
            end=start + (i + 1) * WINDOW,
            count=10,
            closed=True,
            evaluated=i < judged,
        ).model_dump(exclude={"id"})
        for i in range(count)
    ]


def unevaluated_plan(database: Database) -> tuple[list[WindowRow], str]:
    """What ``window_store.unevaluated_windows`` returns, and SQLite's plan for the SQL it ran."""
    statements: list[tuple[str, Any]] = []

    def remember(_conn: object, _cursor: object, statement: str, params: Any, *_: object) -> None:
        statements.append((statement, params))

    with database.read() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", remember)
        found = window_store.unevaluated_windows(session)
        event.remove(connection, "before_cursor_execute", remember)
        (statement, params), *_ = statements
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    return found, " / ".join(str(row[-1]) for row in plan)


class TestDetectionWorkList:
    def test_unjudged_windows_are_found_through_their_own_index(self, db: Database) -> None:
        db.transact(lambda s: window_store.insert_windows(s, window_rows(300, judged=297)))

        found, plan = unevaluated_plan(db)

        assert [w.start for w in found] == [NOW - 3 * WINDOW, NOW - 2 * WINDOW, NOW - WINDOW]
        assert "USING INDEX ix_metric_window_unevaluated" in plan
        assert "TEMP B-TREE" not in plan, "the index already gives the windows oldest first"

    def test_open_and_per_instance_windows_are_not_in_it(self, db: Database) -> None:
        rows = window_rows(6, judged=2)
        rows[2]["closed"] = False
        rows[3]["instance"] = "web-1"

        db.transact(lambda s: window_store.insert_windows(s, rows))
        found, _ = unevaluated_plan(db)

        assert [w.start for w in found] == [rows[4]["start"], rows[5]["start"]]


class TestBatchedWindowWrites:
    """A poll's new windows are inserted, and due windows closed, in one batch each, stored
    as the ORM stores them."""

    @staticmethod
    def stored(db_path: Path) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(db_path)
        try:
            return conn.execute("SELECT * FROM metric_window ORDER BY component").fetchall()
        finally:
            conn.close()

    def test_a_batch_stores_the_same_text_as_the_orm(self, tmp_path: Path) -> None:
        zone = timezone(timedelta(hours=-5))
        values: list[dict[str, Any]] = [
            {"samples": [0.0, -0.0, 1e-300, 2.5, 1.7976931348623157e308, float("nan")]},
            {"sketch": {"version": 1, "alpha": 0.01, "min": -0.0, "max": 3.25, "counts": [1, 2]}},
            {"versions": {"v1": 3, "ü": 1}, "frames": [["a.py", 3, "f"]], "gauges": {"g": 0.1}},
            {"operations": {"GET /x": {"count": 2, "errors": 1, "total_ms": 0.3, "max_ms": 0.2}}},
            {"templates": {"app:1": 2}, "new_templates": ["app:1"], "closed": True, "p95": 4.5},
        ]
        rows = [
            WindowRow(
                component=f"c{i}",
                instance="web-1" if i % 2 else "",
                start=(NOW + i * WINDOW + timedelta(microseconds=7 * i)).astimezone(zone),
                end=NOW + (i + 1) * WINDOW,
                count=i,
                errors=i // 2,
                **extra,
            ).model_dump(exclude={"id"})
            for i, extra in enumerate(values)
        ]
        partial = [{k: v for k, v in row.items() if k not in ("closed", "p95")} for row in rows]
        batched, by_orm, batched_partial = (tmp_path / f"{n}.db" for n in ("a", "b", "c"))
        for path, insert in (
            (batched, lambda s: window_store.insert_windows(s, rows)),
            (by_orm, lambda s: s.add_all(WindowRow(**r) for r in rows)),
            (batched_partial, lambda s: window_store.insert_windows(s, partial)),
        ):
            database = open_database(path)
            database.transact(insert)
            database.dispose()

        orm_rows = self.stored(by_orm)
        assert self.stored(batched) == orm_rows
        assert orm_rows[0][3] == "2026-03-01 12:00:00.000000"  # start, in UTC
        # the columns rows leave out take their defaults (closed: false) or stay empty (p95)
        assert self.stored(batched_partial)[:4] == orm_rows[:4]
        assert self.stored(batched_partial)[4][8:16] == (None,) * 5 + (0, 0, 0)

    def test_closing_stores_the_same_text_as_the_orm(self, tmp_path: Path) -> None:
        rows = [
            WindowRow(
                component=f"c{i}", start=NOW + i * WINDOW, end=NOW + (i + 1) * WINDOW, count=3
            ).model_dump(exclude={"id"})
            | {"samples": [1.5, 2.5, -0.0], "sketch": {}}
            for i in range(3)
        ]
        stats = [
            (0.5, 1.5, 2.5, 2.5, 97.5),
            (0.0, None, None, None, 100.0),
            (1.0, -0.0, 0.1, 1e308, 0.0),
        ]
        batched, by_orm = tmp_path / "a.db", tmp_path / "b.db"
        for path in (batched, by_orm):
            database = open_database(path)
            database.transact(lambda s: window_store.insert_windows(s, rows))
            ids = database.query(lambda s: [w.id for w in window_store.open_windows(s)])
            if path == batched:
                closed = [
                    dict(zip(("window_id", "error_rate", "p50", "p95", "p99", "health"), (i, *v)))
                    for i, v in zip(ids, stats, strict=True)
                ]
                database.transact(lambda s: window_store.store_closed_windows(s, closed))
            else:

                def close(s: Any) -> None:
                    for window, (rate, p50, p95, p99, health) in zip(
                        window_store.open_windows(s), stats, strict=True
                    ):
                        window.error_rate, window.p50, window.p95 = rate, p50, p95
                        window.p99, window.health, window.closed = p99, health, True
                        window.samples, window.sketch = [], {}
                        s.add(window)

                database.transact(close)
            database.dispose()

        assert self.stored(batched) == self.stored(by_orm)
        assert [row[13] for row in self.stored(batched)] == [1, 1, 1]  # closed

    def test_a_naive_start_is_refused(self, db: Database) -> None:
        rows = window_rows(2, judged=0)
        rows[1]["start"] = NOW.replace(tzinfo=None)

        with pytest.raises(ValueError, match="naive datetime"):
            db.transact(lambda s: window_store.insert_windows(s, rows))
        assert db.query(window_store.open_windows) == []


class TestUpgradeInPlace:
    def test_a_file_from_before_the_index_gains_it_and_keeps_its_windows(
        self, db: Database, db_path: Path
    ) -> None:
        db.transact(lambda s: window_store.insert_windows(s, window_rows(120, judged=100)))
        db.dispose()
        conn = sqlite3.connect(db_path)
        with conn:
            conn.execute("DROP INDEX ix_metric_window_unevaluated")
        conn.close()

        with capture_logs() as logs:
            reopened = open_database(db_path)
        try:
            found, plan = unevaluated_plan(reopened)
            stored = reopened.query(lambda s: len(window_store.component_windows(s, "api")))
        finally:
            reopened.dispose()

        (upgraded,) = [e for e in logs if e["event"] == "database schema upgraded in place"]
        assert upgraded["path"] == str(db_path)
        assert upgraded["window_indexes_added"] == ["ix_metric_window_unevaluated"]
        assert upgraded["tables_added"] == [] and upgraded["window_columns_added"] == []
        assert (len(found), stored) == (20, 120)
        assert "USING INDEX ix_metric_window_unevaluated" in plan

    def test_a_file_already_up_to_date_is_opened_without_a_change(
        self, db: Database, db_path: Path
    ) -> None:
        db.dispose()
        before = fingerprint(db_path.parent)

        with capture_logs() as logs:
            open_database(db_path).dispose()

        assert not [e for e in logs if e["event"] == "database schema upgraded in place"]
        assert fingerprint(db_path.parent)[db_path.name] == before[db_path.name]


class TestAtomicTransitions:
    def test_a_transition_and_the_new_state_are_written_together_or_not_at_all(
        self, db: Database
    ) -> None:
        db.transact(lambda s: repo.agent_state(s, NOW))

        def pause_then_fail(session: repo.Session) -> None:
            repo.record_transition(
                session,
                source="idle",
                dest="paused",
                trigger="pause",
                actor="operator",
                reason="half done",
                cycle_id=None,
                state_cycle_id=None,
                paused_from="idle",
                now=NOW,
            )
            raise RuntimeError("the process died between the two writes")

        with pytest.raises(RuntimeError):
            db.transact(pause_then_fail)

        state = db.query(lambda s: s.get(AgentStateRow, 1))
        assert state is not None
        assert (state.state, state.paused_from, state.entry_id) == ("idle", None, 0)
        assert db.query(lambda s: repo.recent_transitions(s, 10)) == []

    def test_without_the_error_both_are_stored(self, db: Database) -> None:
        row = db.transact(
            lambda s: repo.record_transition(
                s,
                source="idle",
                dest="paused",
                trigger="pause",
                actor="operator",
                reason="whole",
                cycle_id=None,
                state_cycle_id=None,
                paused_from="idle",
                now=NOW,
            )
        )
        state = db.query(lambda s: s.get(AgentStateRow, 1))
        assert state is not None
        assert (state.state, state.paused_from, state.entry_id) == ("paused", "idle", row.id)


# --- several processes on one file -------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    import time
    from datetime import UTC, datetime
    from pathlib import Path
    from storage import repository as repo
    from storage.db import open_database

    path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    # Stamped before opening: opening already competes for the write lock, and
    # SQLite's sleep-and-retry busy handler can keep a newcomer waiting there.
    print("start", time.monotonic(), flush=True)
    db = open_database(path)
    for i in range(count):
        def write(session, i=i):
            state = repo.agent_state(session, datetime.now(UTC))
            repo.record_transition(
                session, source=state.state, dest=f"s{i % 3}", trigger="test", actor=name,
                reason=str(i), cycle_id=None, state_cycle_id=None, paused_from=None,
                now=datetime.now(UTC),
            )
            repo.queue_command(
                session, verb="pause", reason=f"{name} {i}", target_state=None, force=False,
                requested_by=name, now=datetime.now(UTC),
            )
            time.sleep(0.005)  # hold the write lock a moment, so the two writers contend
        db.transact(write)
    print("done", time.monotonic(), flush=True)
    db.dispose()
    """
)


def run_writers(path: Path, names: list[str], count: int) -> list[subprocess.CompletedProcess[str]]:
    """Start writer processes, release them together once all are ready, wait for them."""
    procs = [
        subprocess.Popen(
            [PY, "-c", WRITER, str(path), name, str(count)],
            cwd=REPO,
            env=cli_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        deadline = time.monotonic() + DEADLINE_S
        for proc in procs:
            assert proc.stdout is not None
            ready, _, _ = select.select(
                [proc.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            assert ready, "a writer did not start in time"
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


class TestConcurrentProcesses:
    def test_two_writing_processes_never_see_database_is_locked(
        self, db: Database, db_path: Path
    ) -> None:
        count = 120
        results = run_writers(db_path, ["writer-a", "writer-b"], count)

        spans = []
        for result in results:
            assert "database is locked" not in result.stderr
            assert result.returncode == 0, result.stderr
            said = dict(line.split() for line in result.stdout.splitlines())
            spans.append((float(said["start"]), float(said["done"])))
        (a_start, a_end), (b_start, b_end) = spans
        assert a_start < b_end and b_start < a_end, "the writers never overlapped"
        transitions = db.query(
            lambda s: list(s.exec(sql_select(TransitionRow).order_by(col(TransitionRow.id))))
        )
        actors = [t.actor for t in transitions]
        assert actors.count("writer-a") == actors.count("writer-b") == count
        state = db.query(lambda s: s.get(AgentStateRow, 1))
        assert state is not None
        assert state.entry_id == transitions[-1].id
        commands = db.query(repo.queued_commands)
        assert len(commands) == 2 * count

    def test_processes_opening_a_new_file_at_once_all_find_one_schema(self, tmp_path: Path) -> None:
        path = tmp_path / "fresh" / "selfheal.db"
        path.parent.mkdir()
        names = [f"opener-{i}" for i in range(4)]

        results = run_writers(path, names, 1)

        for result in results:
            assert result.returncode == 0, result.stderr
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT version FROM schema_info").fetchall() == [(SCHEMA_VERSION,)]
            assert conn.execute("SELECT count(*) FROM 'transition'").fetchone() == (4,)
        finally:
            conn.close()
