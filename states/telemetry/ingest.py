"""Phase 1 beats: read every source, fold records into windows, close finished windows.

A poll of one file is one transaction: the windows it touched, the file's
cursor and its source's template miner move together, so a crash can neither
lose nor double-count lines (nor teach the miner a message twice).
Malformed lines are counted per source and reason on the cursor and skipped.

Lines are folded into per-window tallies as they are parsed (``folding``);
plain JSON lines take a path that builds no record at all (``json_ingest``),
and every other line the general one, with the same outcome. Which messages
are mined into templates is decided in ``window_templates``.
"""

from __future__ import annotations

import functools
import gc
import glob
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from states.context import BeatContext, BeatResult
from states.registry import beat
from states.settings import Settings, SourceSettings
from states.telemetry import window_templates
from states.telemetry.fields import Rejection
from states.telemetry.folding import TimeBounds, WindowFolder
from states.telemetry.formats import FormatSpec, LineParser, MultilineParser, make_parser
from states.telemetry.json_ingest import JsonFastPath
from states.telemetry.prometheus import metric_sources_due, poll_metric_sources
from states.telemetry.records import Record
from states.telemetry.sketches import merge_latencies, window_quantiles
from states.telemetry.tailing import FileCursor, has_new_bytes, read_new_lines
from states.telemetry.window_templates import SourceTemplates
from states.telemetry.windows import PartialWindow, closes_at, health_score
from storage import repository as repo
from storage.db import Database
from storage.repository import Session
from storage.tables import CursorRow, WindowRow

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
    cursors = db.query(repo.cursors)
    for source in settings.telemetry.sources:
        for path in source_files(source):
            row = cursors.get(f"{source.name}:{path}")
            if has_new_bytes(path, _cursor_of(row, path)):
                return True
    return False


# Line-per-record formats; the others may carry stack traces on following lines.
SINGLE_LINE_KINDS = frozenset({"json", "conductor"})


def _results(
    spec: FormatSpec, parser: LineParser, lines: list[bytes]
) -> Iterator[Record | Rejection]:
    """Parse results for a poll's lines; multi-line records are joined for text formats."""
    if spec.kind in SINGLE_LINE_KINDS:
        for raw in lines:
            if raw.strip():
                parsed = parser.parse(raw)
                if parsed is not None:
                    yield parsed
        return
    joined = MultilineParser(parser)
    for raw in lines:
        yield from joined.feed(raw)
    yield from joined.flush()


def _parse(
    spec: FormatSpec, parser: LineParser, lines: list[bytes], now: datetime, oldest: datetime
) -> tuple[list[Record], Counter[str]]:
    records: list[Record] = []
    rejected: Counter[str] = Counter()
    latest = now + FUTURE_TOLERANCE
    for parsed in _results(spec, parser, lines):
        if isinstance(parsed, Rejection):
            rejected[parsed.reason] += 1
        elif parsed.timestamp > latest:
            rejected["future_timestamp"] += 1
        elif parsed.timestamp < oldest:
            rejected["too_old"] += 1
        else:
            records.append(parsed)
    return records, rejected


def _fold_lines(
    spec: FormatSpec,
    parser: LineParser,
    lines: list[bytes],
    folder: WindowFolder,
    bounds: TimeBounds,
    mining: SourceTemplates | None,
) -> Counter[str]:
    """Parse and fold one poll's lines; returns the rejections by reason."""
    rejected: Counter[str] = Counter()

    def fold_result(parsed: Record | Rejection) -> None:
        if isinstance(parsed, Rejection):
            rejected[parsed.reason] += 1
        elif parsed.timestamp > bounds.latest:
            rejected["future_timestamp"] += 1
        elif parsed.timestamp < bounds.oldest:
            rejected["too_old"] += 1
        else:
            folder.add_record(parsed, None if mining is None else mining.hit(parsed))

    fast = JsonFastPath.for_parser(parser) if spec.kind == "json" else None
    if fast is None:
        for parsed in _results(spec, parser, lines):
            fold_result(parsed)
        return rejected

    def general(raw: bytes) -> None:
        if raw.strip():
            parsed = parser.parse(raw)
            if parsed is not None:
                fold_result(parsed)

    fast.fold(lines, folder, bounds, rejected, general, mine_severe=mining is not None)
    return rejected


class _Window(Protocol):
    """What merging needs of a window: a stored ``WindowRow`` or a ``NewWindow``."""

    count: int
    errors: int
    samples: list[float]
    sketch: dict[str, Any]
    versions: dict[str, int]
    frames: list[list[Any]]
    templates: dict[str, int]
    new_templates: list[str]


@dataclass
class NewWindow:
    """A window this poll creates; inserted with the others in one statement."""

    component: str
    instance: str
    start: datetime
    end: datetime
    count: int = 0
    errors: int = 0
    samples: list[float] = field(default_factory=list)
    sketch: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    frames: list[list[Any]] = field(default_factory=list)
    templates: dict[str, int] = field(default_factory=dict)
    new_templates: list[str] = field(default_factory=list)


def _merge(row: _Window, part: PartialWindow) -> None:
    row.count += part.count
    row.errors += part.errors
    row.samples, row.sketch = merge_latencies(row.samples, row.sketch, part.samples, part.sketch)
    if part.versions:
        versions = dict(row.versions)
        for version, count in part.versions.items():
            versions[version] = versions.get(version, 0) + count
        row.versions = versions
    if part.frames:
        frames = list(row.frames)
        frames.extend(f for f in part.frames if f not in frames)
        row.frames = frames[:20]
    if part.templates:
        row.templates = window_templates.merge_counts(row.templates, part.templates)
    if part.new_templates:
        row.new_templates = window_templates.merge_new(row.new_templates, part.new_templates)


def store_poll(
    session: Session,
    *,
    key: str,
    source: str,
    cursor: FileCursor,
    partials: dict[tuple[str, str, datetime], PartialWindow],
    lines: int,
    rejected: Counter[str],
    window_s: float,
    now: datetime,
    templates: SourceTemplates | None = None,
) -> int:
    """Merge one file's poll into the windows and advance its cursor, atomically.

    ``templates`` is the source's miner after this poll, stored in the same
    transaction so that it has learned exactly the lines the cursor passed.
    Returns how many records arrived for windows already closed ("late"),
    which are counted on the cursor with ``rejected``.
    """
    late = _store_windows(session, partials, window_s)
    stored = session.get(CursorRow, key) or CursorRow(
        key=key, source=source, path=cursor.path, updated_at=now
    )
    stored.device, stored.inode, stored.offset, stored.head = (
        cursor.device,
        cursor.inode,
        cursor.offset,
        cursor.head,
    )
    stored.lines += lines
    counts = dict(stored.rejected)
    for reason, count in (rejected + Counter(late=late)).items():
        counts[reason] = counts.get(reason, 0) + count
    stored.rejected = counts
    stored.updated_at = now
    session.add(stored)
    if templates is not None:
        state = templates.state()
        count = templates.miner.template_count()
        repo.store_template_state(session, templates.source, state, count, now)
    return late


def _store_windows(
    session: Session, partials: dict[tuple[str, str, datetime], PartialWindow], window_s: float
) -> int:
    """Merge partial windows into stored ones, insert the new ones in one batch; returns late."""
    existing = repo.windows_for_keys(session, list(partials))
    width = timedelta(seconds=window_s)
    created: list[NewWindow] = []
    late = 0
    for (component, instance, start), part in partials.items():
        row = existing.get((component, instance, start))
        if row is None:
            new = NewWindow(component, instance, start, start + width)
            _merge(new, part)
            created.append(new)
        elif row.closed:
            late += part.count if instance == "" else 0
        else:
            _merge(row, part)
            session.add(row)
    repo.insert_windows(session, [vars(new) for new in created])
    return late


@contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while one file's poll is folded and stored.

    Folding allocates a dictionary per line, freed at once by reference
    counting, yet each 700 allocations still make the collector scan the young
    objects, and now and then the whole heap: a tenth of the time of a large
    poll, measured. A poll makes no garbage cycles worth a pause (its memory is
    bounded by ``max_bytes_per_poll``); any it makes are collected afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

    def run(
        self, settings: Settings, db: Database, cursor: FileCursor | None, report: PollReport
    ) -> None:
        telemetry = settings.telemetry
        try:
            result = read_new_lines(
                self.path,
                cursor,
                max_bytes=telemetry.max_bytes_per_poll,
                max_line=telemetry.max_line_bytes,
            )
        except OSError as exc:
            report.errors[self.key] = f"cannot read: {exc}"
            return
        folder = WindowFolder(telemetry.window_s)
        spec = self.source.format
        rejected = _fold_lines(spec, self.parser, result.lines, folder, self.bounds, self.mining)
        if result.too_long:
            rejected["too_long"] += result.too_long
        lines = len(result.lines) + result.too_long
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
            )
        )
        if late:
            rejected["late"] += late
        report.files_read += 1
        report.lines += lines
        report.records += folder.records
        report.rejected.update(rejected)


def poll_sources(settings: Settings, db: Database, now: datetime) -> PollReport:
    """Read every source once; one bad file is reported and never stops the others."""
    report = PollReport()
    cursors = db.query(repo.cursors)
    bounds = TimeBounds(
        oldest=now - timedelta(seconds=settings.telemetry.retention_s),
        latest=now + FUTURE_TOLERANCE,
    )
    for source in settings.telemetry.sources:
        parser = make_parser(source.format)
        mining: SourceTemplates | None = None
        files = source_files(source)
        if not files:
            report.errors[source.name] = f"no file matches {', '.join(source.paths)}"
        for path in files:
            key = f"{source.name}:{path}"
            cursor = _cursor_of(cursors.get(key), path)
            if not has_new_bytes(path, cursor):
                continue
            if mining is None and window_templates.mines_any(source.format.kind):
                mining = _restored_templates(db, source)
            poll = _FilePoll(source, parser, path, key, bounds, mining, now)
            with collection_paused():
                poll.run(settings, db, cursor, report)
    _poll_metrics(settings, db, now, report)
    return report


def _restored_templates(db: Database, source: SourceSettings) -> SourceTemplates:
    """The source's miner as its last committed poll left it."""
    state = db.query(lambda session: repo.template_state(session, source.name))
    return SourceTemplates.restored(source.name, source.format.kind, state)


def _poll_metrics(settings: Settings, db: Database, now: datetime, report: PollReport) -> None:
    """Scrape or query every metric source (Prometheus); their errors join the report's."""
    polled = poll_metric_sources(settings, db, now)
    report.metric_sources_read += polled.read
    report.metric_windows += polled.windows
    report.rejected.update(polled.rejected)
    report.errors.update(polled.errors)


def window_statistics(
    component: str,
    count: int,
    errors: int,
    samples: list[float],
    sketch: dict[str, Any],
    settings: Settings,
) -> dict[str, float | None]:
    """A finished window's error rate, latency quantiles and health."""
    slo = settings.component(component).slo_p95_ms
    error_rate = errors / count if count else 0.0
    p50, p95, p99 = window_quantiles(samples, sketch, (0.5, 0.95, 0.99))
    health = health_score(error_rate, p95, slo) if count else None
    return {"error_rate": error_rate, "p50": p50, "p95": p95, "p99": p99, "health": health}


def close_window(row: WindowRow, settings: Settings) -> None:
    """Compute a finished window's statistics and drop its samples (or sketch)."""
    stats = window_statistics(
        row.component, row.count, row.errors, row.samples, row.sketch, settings
    )
    row.error_rate = stats["error_rate"] or 0.0
    row.p50, row.p95, row.p99, row.health = (
        stats["p50"],
        stats["p95"],
        stats["p99"],
        stats["health"],
    )
    row.samples, row.sketch = [], {}
    row.closed = True


def close_due_windows(session: Session, settings: Settings, now: datetime) -> int:
    """Close every open window whose lateness allowance has passed, in one batched update."""
    window_s, lateness_s = settings.telemetry.window_s, settings.telemetry.lateness_s
    with collection_paused():
        closed = [
            {"window_id": w.id, **window_statistics(*_latencies(w), settings)}
            for w in repo.open_window_latencies(session)
            if closes_at(w.start, window_s, lateness_s) <= now
        ]
        repo.store_closed_windows(session, closed)
    return len(closed)


def _latencies(
    window: repo.OpenWindowLatencies,
) -> tuple[str, int, int, list[float], dict[str, Any]]:
    return window.component, window.count, window.errors, window.samples, window.sketch


@beat("telemetry.read_sources")
def read_sources(ctx: BeatContext) -> BeatResult:
    """Read what is new in every source."""
    report = poll_sources(ctx.settings, ctx.db, ctx.clock.now())
    return BeatResult(output=report.as_dict())


@beat("telemetry.close_windows")
def close_windows(ctx: BeatContext) -> BeatResult:
    """Close windows that can no longer receive records."""
    now = ctx.clock.now()
    closed = ctx.db.transact(lambda s: close_due_windows(s, ctx.settings, now))
    return BeatResult(output={"closed": closed})


@beat("telemetry.apply_retention")
def apply_retention(ctx: BeatContext) -> BeatResult:
    """Drop windows past retention and old poll bookkeeping outside cycles."""
    now = ctx.clock.now()
    keep = ctx.settings.agent.keep_idle_transitions
    before = now - timedelta(seconds=ctx.settings.telemetry.retention_s)

    def prune(session: Session) -> dict[str, int]:
        return {
            "windows": repo.prune_windows(session, before),
            "transitions": repo.prune_idle_transitions(session, keep),
            "beat_runs": repo.prune_idle_beat_runs(session, keep),
        }

    return BeatResult(output=ctx.db.transact(prune))
