"""Phase 1 beats: read every source, fold records into windows, close finished windows.

A poll of one file is one transaction: the windows it touched, the file's
cursor and its source's template miner move together, so a crash can neither
lose nor double-count lines (nor teach the miner a message twice).
Malformed lines are counted per source and reason on the cursor and skipped.

A file's new lines are read a block at a time (``tailing.NewLines``) and
folded into per-window tallies as they are parsed (``line_folding``); plain
JSON lines take a path that builds no record at all (``json_ingest``), and
every other line the general one, with the same outcome. Which messages are
mined into templates is decided in ``window_templates``; how windows are
merged, inserted and closed in the database, in ``window_rows``. The daemon
passes its ``IngestMemory`` so that a poll starts from what the last one
learned, and closing uses the latencies the polls stored.
"""

from __future__ import annotations

import functools
import glob
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from states.context import BeatContext, BeatResult
from states.registry import beat
from states.settings import Settings
from states.telemetry import window_templates
from states.telemetry.folding import TimeBounds, WindowFolder
from states.telemetry.formats import LineParser, make_parser
from states.telemetry.ingest_memory import IngestMemory, StoredWindow
from states.telemetry.line_folding import LineFolding
from states.telemetry.prometheus import metric_sources_due, poll_metric_sources
from states.telemetry.settings import SourceSettings
from states.telemetry.tailing import FileCursor, NewLines, has_new_bytes
from states.telemetry.window_rows import close_due_windows, collection_paused, store_poll
from states.telemetry.window_templates import SourceTemplates
from storage import budget_hours, window_store
from storage import repository as repo
from storage.db import Database
from storage.repository import Session
from storage.tables import CursorRow

__all__ = [  # close_due_windows and store_poll live in window_rows; callers import them here
    "FUTURE_TOLERANCE",
    "PollReport",
    "apply_retention",
    "close_due_windows",
    "close_windows",
    "has_new_telemetry",
    "note_sources_without_files",
    "poll_sources",
    "read_sources",
    "source_files",
    "store_poll",
]

FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass
class PollReport:
    """What one poll of every source did."""

    files_read: int = 0
    lines: int = 0
    records: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)
    metric_sources_read: int = 0
    metric_windows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_read": self.files_read,
            "lines": self.lines,
            "records": self.records,
            "rejected": dict(self.rejected),
            "errors": self.errors,
            "metric_sources_read": self.metric_sources_read,
            "metric_windows": self.metric_windows,
        }


def source_files(source: SourceSettings) -> list[Path]:
    """The files a source's glob patterns match now, in a stable order."""
    found: set[Path] = set()
    for pattern in source.paths:
        found.update(Path(p) for p in glob.glob(pattern))
    return sorted(p for p in found if p.is_file())


def _cursor_of(row: CursorRow | None, path: Path) -> FileCursor | None:
    if row is None:
        return None
    return FileCursor(
        path=str(path), device=row.device, inode=row.inode, offset=row.offset, head=row.head
    )


def has_new_telemetry(settings: Settings, db: Database) -> bool:
    """Whether any source file changed since its cursor; ``stat`` only, no reads."""
    if metric_sources_due(settings):
        return True
    cursors = db.query(window_store.cursors)
    for source in settings.telemetry.sources:
        for path in source_files(source):
            row = cursors.get(f"{source.name}:{path}")
            if has_new_bytes(path, _cursor_of(row, path)):
                return True
    return False


def note_sources_without_files(settings: Settings, db: Database, now: datetime) -> list[str]:
    """Put on record each source that matches no file and is not yet there; their names.

    An idle agent polls only when a file changed, so a source whose paths
    match nothing (a typo, a service that never started) would otherwise
    never be polled, and its error never shown by ``selfheal status``.
    """
    noted: list[str] = []
    cursors = db.query(window_store.cursors)
    for source in settings.telemetry.sources:
        if _no_file_key(source) not in cursors and not source_files(source):
            _note_no_file(db, source, now, PollReport())
            noted.append(source.name)
    return noted


NO_FILE: Final = "no_file"


def _no_file_key(source: SourceSettings) -> str:
    """The cursor row that counts the polls in which a source matched no file."""
    return f"{source.name}:{', '.join(source.paths)}"


def _note_no_file(db: Database, source: SourceSettings, now: datetime, report: PollReport) -> None:
    """A source whose paths match no file: in the report and counted on its own cursor row."""
    patterns = ", ".join(source.paths)
    report.errors[source.name] = f"no file matches {patterns}"
    db.transact(
        functools.partial(
            window_store.note_source_failure,
            key=_no_file_key(source),
            source=source.name,
            path=patterns,
            reason=NO_FILE,
            now=now,
        )
    )


@dataclass(frozen=True)
class _FilePoll:
    """One poll of one file of a source: read, fold, store with the cursor, report."""

    source: SourceSettings
    parser: LineParser
    path: Path
    key: str
    bounds: TimeBounds
    mining: SourceTemplates | None
    now: datetime
    memory: IngestMemory

    def run(
        self, settings: Settings, db: Database, cursor: FileCursor | None, report: PollReport
    ) -> None:
        telemetry = settings.telemetry
        folder = WindowFolder(telemetry.window_s)
        spec = self.source.format
        shapes = self.memory.shapes(self.source.name, spec, mine_severe=self.mining is not None)
        folding = LineFolding(spec, self.parser, folder, self.bounds, self.mining, shapes)
        reading = NewLines(
            self.path,
            cursor,
            max_bytes=telemetry.max_bytes_per_poll,
            max_line=telemetry.max_line_bytes,
            whole=folding.takes_line_blocks,
        )
        read = 0
        try:
            for block in reading:
                folding.feed(block)
                read += len(block)
        except OSError as exc:
            report.errors[self.key] = f"cannot read: {exc}"
            if self.mining is not None and read:  # it learned lines this poll will not store
                self.mining.restore(
                    db.query(
                        functools.partial(window_store.template_state, source=self.source.name)
                    )
                )
            return
        folding.finish()
        result, rejected = reading.result, folding.rejected
        if result.too_long:
            rejected["too_long"] += result.too_long
        lines = read + result.too_long
        written: list[StoredWindow] = []
        late = db.transact(
            functools.partial(
                store_poll,
                key=self.key,
                source=self.source.name,
                cursor=result.cursor,
                partials=folder.partials(),
                lines=lines,
                rejected=rejected,
                window_s=telemetry.window_s,
                now=self.now,
                templates=self.mining,
                written=written,
            )
        )
        self.memory.latencies.remember(written)
        if late:
            rejected["late"] += late
        report.files_read += 1
        report.lines += lines
        report.records += folder.records
        report.rejected.update(rejected)


def poll_sources(
    settings: Settings, db: Database, now: datetime, memory: IngestMemory | None = None
) -> PollReport:
    """Read every source once; one bad file is reported and never stops the others.

    ``memory``: what earlier polls of this process learned (the daemon's);
    None starts from nothing, as a first poll does.
    """
    memory = IngestMemory() if memory is None else memory
    report = PollReport()
    cursors = db.query(window_store.cursors)
    bounds = TimeBounds(
        oldest=now - timedelta(seconds=settings.telemetry.retention_s),
        latest=now + FUTURE_TOLERANCE,
    )
    for source in settings.telemetry.sources:
        parser = make_parser(source.format)
        mining: SourceTemplates | None = None
        files = source_files(source)
        if not files:
            _note_no_file(db, source, now, report)
        for path in files:
            key = f"{source.name}:{path}"
            cursor = _cursor_of(cursors.get(key), path)
            if not has_new_bytes(path, cursor):
                continue
            if mining is None and window_templates.mines_any(source.format.kind):
                mining = _restored_templates(db, source)
            poll = _FilePoll(source, parser, path, key, bounds, mining, now, memory)
            with collection_paused():
                poll.run(settings, db, cursor, report)
    _poll_metrics(settings, db, now, report)
    return report


def _restored_templates(db: Database, source: SourceSettings) -> SourceTemplates:
    """The source's miner as its last committed poll left it."""
    state = db.query(lambda session: window_store.template_state(session, source.name))
    return SourceTemplates.restored(source.name, source.format.kind, state)


def _poll_metrics(settings: Settings, db: Database, now: datetime, report: PollReport) -> None:
    """Scrape or query every metric source (Prometheus); their errors join the report's."""
    polled = poll_metric_sources(settings, db, now)
    report.metric_sources_read += polled.read
    report.metric_windows += polled.windows
    report.rejected.update(polled.rejected)
    report.errors.update(polled.errors)


@beat("telemetry.read_sources")
def read_sources(ctx: BeatContext) -> BeatResult:
    """Read what is new in every source."""
    report = poll_sources(ctx.settings, ctx.db, ctx.clock.now(), ctx.telemetry)
    return BeatResult(output=report.as_dict())


@beat("telemetry.close_windows")
def close_windows(ctx: BeatContext) -> BeatResult:
    """Close windows that can no longer receive records."""
    now = ctx.clock.now()
    latencies = ctx.telemetry.latencies
    closed = ctx.db.transact(lambda s: close_due_windows(s, ctx.settings, now, latencies))
    return BeatResult(output={"closed": closed})


@beat("telemetry.apply_retention")
def apply_retention(ctx: BeatContext) -> BeatResult:
    """Drop windows past retention, hourly budget totals past the SLO period, and old poll
    bookkeeping outside cycles."""
    now = ctx.clock.now()
    keep = ctx.settings.agent.keep_idle_transitions
    before = now - timedelta(seconds=ctx.settings.telemetry.retention_s)
    budget_oldest = now - timedelta(seconds=ctx.settings.detect.budget_reach_s())

    def prune(session: Session) -> dict[str, int]:
        return {
            "windows": window_store.prune_windows(session, before),
            "budget_hours": budget_hours.prune(session, budget_oldest),
            "transitions": repo.prune_idle_transitions(session, keep),
            "beat_runs": repo.prune_idle_beat_runs(session, keep),
        }

    return BeatResult(output=ctx.db.transact(prune))
