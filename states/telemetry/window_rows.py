"""Storing windows: a poll's partial windows merged into the stored rows, and due windows closed.

Both are one transaction each (the caller's): merging moves with the file's
cursor and its source's template miner, and closing computes every due
window's statistics and writes them in one batched update. New windows of a
poll are inserted in one batch too, since a large poll creates hundreds.
Latencies are merged through ``sketches.merge_latencies`` (exact samples up to
1,024, a sketch after), template counts through ``window_templates`` and
per-operation figures through ``operations``. A poll hands back the
latencies it stored, and closing takes a window's from there rather than
reading them back while they are still what is stored
(``ingest_memory.StoredLatencies``).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from states.settings import Settings
from states.telemetry import operations, window_templates
from states.telemetry.ingest_memory import Quantiles, StoredLatencies, StoredWindow, quantiles_of
from states.telemetry.sketches import merge_latencies
from states.telemetry.tailing import FileCursor
from states.telemetry.window_templates import SourceTemplates
from states.telemetry.windows import PartialWindow, closes_at, health_score
from storage import window_store
from storage.repository import Session
from storage.tables import CursorRow, WindowRow


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
    operations: dict[str, dict[str, float]]


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
    gauges: dict[str, float] = field(default_factory=dict)  # scrapes merge them in later
    operations: dict[str, dict[str, float]] = field(default_factory=dict)


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
    if part.operations:
        row.operations = operations.merge(row.operations, part.operations)


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
    written: list[StoredWindow] | None = None,
) -> int:
    """Merge one file's poll into the windows and advance its cursor, atomically.

    ``templates`` is the source's miner after this poll, stored in the same
    transaction so that it has learned exactly the lines the cursor passed.
    ``written`` is given the latencies of every open window as written (for
    the caller to remember once the transaction has committed).
    Returns how many records arrived for windows already closed ("late"),
    which are counted on the cursor with ``rejected``.
    """
    if written is not None:
        written.clear()  # a retried transaction starts over
    late = _store_windows(session, partials, window_s, written)
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
        window_store.store_template_state(session, templates.source, state, count, now)
    return late


def _store_windows(
    session: Session,
    partials: dict[tuple[str, str, datetime], PartialWindow],
    window_s: float,
    written: list[StoredWindow] | None,
) -> int:
    """Merge partial windows into stored ones, insert the new ones in one batch; returns late."""
    existing = window_store.windows_for_keys(session, list(partials))
    width = timedelta(seconds=window_s)
    created: list[NewWindow] = []
    late = 0
    for key, part in partials.items():
        component, instance, start = key
        row: _Window | None = existing.get(key)
        if row is None:
            row = new = NewWindow(component, instance, start, start + width)
            _merge(new, part)
            created.append(new)
        elif existing[key].closed:
            late += part.count if instance == "" else 0
            continue
        else:
            _merge(row, part)
            session.add(row)
        if written is not None:
            written.append(StoredWindow(key, row.count, row.errors, row.samples, row.sketch))
    window_store.insert_windows(session, [vars(new) for new in created])
    return late


def window_statistics(
    component: str,
    count: int,
    errors: int,
    samples: list[float],
    sketch: dict[str, Any],
    settings: Settings,
) -> dict[str, float | None]:
    """A finished window's error rate, latency quantiles and health."""
    return _statistics(component, count, errors, quantiles_of(samples, sketch), settings)


def _statistics(
    component: str, count: int, errors: int, quantiles: Quantiles, settings: Settings
) -> dict[str, float | None]:
    slo = settings.component(component).slo_p95_ms
    error_rate = errors / count if count else 0.0
    p50, p95, p99 = quantiles
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


def close_due_windows(
    session: Session, settings: Settings, now: datetime, latencies: StoredLatencies | None = None
) -> int:
    """Close every open window whose lateness allowance has passed, in one batched update;
    a window's latencies come from ``latencies`` while they are what is stored."""
    window_s, lateness_s = settings.telemetry.window_s, settings.telemetry.lateness_s
    with collection_paused():
        due = [
            w
            for w in window_store.open_window_counts(session)
            if closes_at(w.start, window_s, lateness_s) <= now
        ]
        quantiles = _remembered(due, latencies)
        unknown = [w.id for w in due if w.id not in quantiles]
        for window_id, (samples, sketch) in window_store.window_latencies(session, unknown).items():
            quantiles[window_id] = quantiles_of(samples, sketch)
        closed = [
            {
                "window_id": w.id,
                **_statistics(w.component, w.count, w.errors, quantiles[w.id], settings),
            }
            for w in due
        ]
        window_store.store_closed_windows(session, closed)
    return len(closed)


def _remembered(
    due: list[window_store.OpenWindowCounts], latencies: StoredLatencies | None
) -> dict[int, Quantiles]:
    """The quantiles of the due windows whose latencies are remembered as stored, by id."""
    if latencies is None or not len(latencies):
        return {}
    found: dict[int, Quantiles] = {}
    for w in due:
        known = latencies.take((w.component, w.instance, w.start), w.count, w.errors)
        if known is not None:
            found[w.id] = known
    return found
