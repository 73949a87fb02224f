"""Reading log files into windows: bad lines, partial lines, rotation, truncation, restarts.

Every test writes real files under tmp_path and polls them with
``states.telemetry.ingest.poll_sources`` into a real SQLite database, at a
fixed ``now`` a little after the lines were written.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from states.settings import Settings
from states.telemetry.ingest import (
    PollReport,
    has_new_telemetry,
    note_sources_without_files,
    poll_sources,
)
from storage import window_store
from storage.db import Database, open_database
from storage.tables import CursorRow
from tests.operator_support import append, log_line, ok_json, run_cli, write_config

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(minutes=10)
MAX_LINE = 2048


def good(i: int, **fields: Any) -> str:
    return log_line(T0 + timedelta(seconds=i), **fields) + "\n"


def settings_for(root: Path) -> Settings:
    return Settings.model_validate(
        {
            "agent": {"data_dir": str(root / "data")},
            "telemetry": {
                "max_line_bytes": MAX_LINE,
                "sources": [{"name": "app", "paths": [str(root / "logs" / "*.log")]}],
            },
            "deploy": {
                "kind": "command",
                "command": {"targets": ["t1"], "deploy": ["true"], "version": ["true"]},
            },
        }
    )


class Feed:
    """One source's log file, the settings that read it and the database it is read into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "logs" / "app.log"
        self.settings = settings_for(root)
        self.db_path = root / "data" / "selfheal.db"
        self.db: Database = open_database(self.db_path)

    def poll(self) -> PollReport:
        report = poll_sources(self.settings, self.db, NOW)
        assert report.errors == {}
        return report

    def cursor(self) -> CursorRow:
        return self.db.query(window_store.cursors)[f"app:{self.log}"]

    def counted(self) -> int:
        """Requests counted into the component's all-instance windows."""
        windows = self.db.query(
            lambda s: window_store.component_windows(s, "catalog", closed_only=False)
        )
        return sum(w.count for w in windows)

    def samples(self) -> list[str]:
        """Every latency sample in the open windows: tests tag lines by their duration."""
        windows = self.db.query(
            lambda s: window_store.component_windows(s, "catalog", closed_only=False)
        )
        return sorted(f"{x:g}" for w in windows for x in w.samples)

    def restart(self) -> None:
        """What a restarted agent does: a new Database object on the same file."""
        self.db.dispose()
        self.db = open_database(self.db_path)


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[Feed]:
    opened = Feed(tmp_path)
    yield opened
    opened.db.dispose()


class TestBadLines:
    def test_each_bad_line_is_counted_by_reason_and_skipped_while_good_lines_are_counted(
        self, feed: Feed
    ) -> None:
        lines = [
            good(0).encode(),
            b"\x89PNG\r\x1a\x00\x00\x00\rIHDR\x00\x00\x01\x00\n",  # binary garbage
            b'{"ts": "2026-03-01T11:50:01+00:00", "message": "caf\xe9"}\n',  # latin-1, not UTF-8
            good(2).encode()[:40] + b"\n",  # truncated JSON
            good(3, duration_ms="fast").encode(),
            good(4, status="OK").encode(),
            good(5, ts="the day before yesterday").encode(),
            b'["not", "an", "object"]\n',
            good(6, message="x" * (MAX_LINE + 100)).encode(),  # longer than max_line_bytes
            log_line(NOW + timedelta(hours=1)).encode() + b"\n",  # from the future
            b"plain text, not JSON\n",
            good(7).encode(),
            good(8).encode(),
        ]
        append(feed.log, b"".join(lines))

        report = feed.poll()

        expected = {
            "invalid_utf8": 2,
            "not_json": 2,
            "bad_duration": 1,
            "bad_status": 1,
            "bad_timestamp": 1,
            "not_object": 1,
            "too_long": 1,
            "future_timestamp": 1,
        }
        cursor = feed.cursor()
        assert cursor.rejected == expected
        assert dict(report.rejected) == expected
        assert cursor.lines == len(lines)
        assert (report.lines, report.records) == (len(lines), 3)
        assert feed.counted() == 3
        assert cursor.offset == feed.log.stat().st_size

    def test_rejections_accumulate_on_the_cursor_across_polls(self, feed: Feed) -> None:
        append(feed.log, good(0) + "{oops\n")
        feed.poll()
        append(feed.log, "{again\n" + good(1, status=-5))
        feed.poll()
        assert feed.cursor().rejected == {"not_json": 2, "bad_status": 1}
        assert feed.cursor().lines == 4
        assert feed.counted() == 1

    def test_an_over_long_line_still_being_written_is_skipped_once_it_ends(
        self, feed: Feed
    ) -> None:
        append(feed.log, good(0) + "z" * (MAX_LINE * 3))
        feed.poll()
        assert feed.cursor().offset == len(good(0))
        assert feed.cursor().rejected == {}

        append(feed.log, "z\n" + good(1))
        feed.poll()

        assert feed.cursor().rejected == {"too_long": 1}
        assert feed.counted() == 2
        assert feed.cursor().offset == feed.log.stat().st_size


class TestPartialLines:
    def test_a_last_line_without_its_newline_waits_until_it_is_complete(self, feed: Feed) -> None:
        second = good(1, duration_ms=22.0)
        append(feed.log, good(0) + second[:30])

        first = feed.poll()

        assert (first.lines, first.rejected) == (1, {})
        assert feed.cursor().offset == len(good(0))
        assert feed.counted() == 1

        append(feed.log, second[30:])
        feed.poll()

        assert feed.counted() == 2
        assert feed.cursor().rejected == {}
        assert feed.samples() == ["12.3", "22"]
        assert feed.cursor().offset == feed.log.stat().st_size


class TestRotation:
    def test_rename_and_new_file_reads_the_rest_of_the_old_file_then_the_new_one(
        self, feed: Feed
    ) -> None:
        append(feed.log, "".join(good(i, duration_ms=float(i)) for i in range(3)))
        feed.poll()
        append(feed.log, "".join(good(i, duration_ms=float(i)) for i in (3, 4)))  # not yet read
        feed.log.rename(feed.log.with_name("app.log.1"))
        append(feed.log, "".join(good(i, duration_ms=float(i)) for i in (5, 6)))

        report = feed.poll()

        assert report.lines == 4
        assert feed.samples() == [str(i) for i in range(7)]
        cursor = feed.cursor()
        assert cursor.inode == feed.log.stat().st_ino
        assert cursor.offset == feed.log.stat().st_size
        assert feed.poll().files_read == 0

    def test_copy_truncate_restarts_at_the_beginning_of_the_file(self, feed: Feed) -> None:
        append(feed.log, "".join(good(i, duration_ms=float(i)) for i in range(3)))
        feed.poll()
        shutil.copy(feed.log, feed.log.with_name("app.log.1"))
        with feed.log.open("r+b") as handle:
            handle.truncate(0)
        append(feed.log, good(10, duration_ms=10.0))

        feed.poll()

        assert feed.samples() == ["0", "1", "10", "2"]
        assert feed.cursor().offset == feed.log.stat().st_size

    def test_copy_truncate_is_noticed_even_when_the_new_content_outgrew_the_old(
        self, feed: Feed
    ) -> None:
        append(feed.log, "".join(good(i, duration_ms=float(i)) for i in range(2)))
        feed.poll()
        with feed.log.open("r+b") as handle:
            handle.truncate(0)
        append(feed.log, "".join(good(i, duration_ms=float(i)) for i in range(20, 25)))

        feed.poll()

        assert feed.samples() == sorted(["0", "1", "20", "21", "22", "23", "24"])
        assert feed.counted() == 7


class TestRestart:
    def test_a_new_database_object_on_the_same_file_continues_from_the_cursor(
        self, feed: Feed
    ) -> None:
        append(feed.log, "".join(good(i) for i in range(3)))
        feed.poll()
        feed.restart()
        append(feed.log, "".join(good(i) for i in (3, 4)))

        report = feed.poll()

        assert report.lines == 2
        assert feed.counted() == 5
        assert feed.cursor().lines == 5


# --- the idle check reads no file -----------------------------------------------------------

_OPENED: list[str] = []
_RECORDING: list[bool] = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _RECORDING[0] and args and isinstance(args[0], str | bytes | Path):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only records while asked


def opened_during(work: Any) -> tuple[Any, list[str]]:
    """``work()`` and every file Python opened while it ran (the interpreter's audit events)."""
    _OPENED.clear()
    _RECORDING[0] = True
    try:
        result = work()
    finally:
        _RECORDING[0] = False
    return result, list(_OPENED)


class TestIdleCheck:
    def test_nothing_new_is_answered_from_stat_alone_and_new_bytes_are_noticed(
        self, feed: Feed
    ) -> None:
        append(feed.log, "".join(good(i) for i in range(3)))
        _, opened = opened_during(feed.poll)
        assert str(feed.log) in opened  # the recorder sees a real read

        changed, opened = opened_during(lambda: has_new_telemetry(feed.settings, feed.db))

        assert changed is False
        assert feed.cursor().offset == feed.log.stat().st_size
        assert str(feed.log) not in opened

        append(feed.log, good(3))
        changed, opened = opened_during(lambda: has_new_telemetry(feed.settings, feed.db))

        assert changed is True
        assert str(feed.log) not in opened

    def test_a_file_that_never_had_a_cursor_counts_as_new_only_when_not_empty(
        self, feed: Feed
    ) -> None:
        feed.log.parent.mkdir(parents=True)
        feed.log.touch()
        assert has_new_telemetry(feed.settings, feed.db) is False
        append(feed.log, good(0))
        assert has_new_telemetry(feed.settings, feed.db) is True


# --- a source that matches no file ------------------------------------------------------------


class TestNoFileMatches:
    def test_status_shows_a_source_whose_paths_match_no_file(self, tmp_path: Path) -> None:
        config = write_config(tmp_path)  # its source reads logs/*.log: there is no logs folder

        for _ in range(2):  # noted once: an idle agent does not poll for it
            ok_json(run_cli(config, "tick", "--json"))
        status = ok_json(run_cli(config, "status", "--json"))
        text = run_cli(config, "status")

        [(key, source)] = status["sources"].items()
        assert key == f"app:{tmp_path / 'logs' / '*.log'}"
        assert (source["lines"], source["rejected"]) == (0, {"no_file": 1})
        assert f"source {key}: 0 lines, rejected: no_file=1" in text.stdout

    def test_the_count_grows_with_each_poll_that_finds_no_file(self, feed: Feed) -> None:
        append(feed.log, good(0))
        feed.poll()
        missing = Settings.model_validate(
            {
                **feed.settings.model_dump(),
                "telemetry": {
                    "sources": [
                        *feed.settings.model_dump()["telemetry"]["sources"],
                        {"name": "gone", "paths": [str(feed.log.parent / "gone-*.log")]},
                    ]
                },
            }
        )
        assert note_sources_without_files(missing, feed.db, NOW) == ["gone"]
        assert note_sources_without_files(missing, feed.db, NOW) == []  # once on record
        for _ in range(2):
            report = poll_sources(missing, feed.db, NOW)
            assert report.errors == {"gone": f"no file matches {feed.log.parent / 'gone-*.log'}"}
        row = feed.db.query(window_store.cursors)[f"gone:{feed.log.parent / 'gone-*.log'}"]
        assert (row.source, row.rejected, row.offset) == ("gone", {"no_file": 3}, 0)
