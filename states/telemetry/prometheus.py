"""Polling metric sources: Prometheus exposition endpoints (scraped) and servers (queried).

Every source is fetched at the same time with its own deadline; one that is
missing, slow or answers nonsense is reported in the poll's errors and as a
reason count on its cursor (shown by ``selfheal status``), and the others go on.
What an answer becomes is ``metric_sources``; here each source's finished
windows and its next state are written in one transaction with its
``telemetry_cursor`` row (state as JSON in ``head``, ``offset`` the scrape's
Unix time or the last window end written), so a restart neither loses nor
repeats a window.

A window another source already wrote is left alone (counted as ``window_exists``):
feed each component's requests from one source. Gauges are the exception:
they are merged into a window a log source wrote, and a source that maps no
requests writes its windows open, so that a log source can still add the
requests and the window closes as a log window does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from states.settings import Settings
from states.telemetry import metric_sources
from states.telemetry.metric_sources import MetricSource
from states.telemetry.prometheus_api import Job, SourceError, run_all
from states.telemetry.query_windows import due_window_ends, query_jobs
from states.telemetry.settings import ScrapeSourceSettings
from storage import window_store
from storage.db import Database
from storage.repository import Session
from storage.tables import CursorRow, WindowRow


@dataclass
class MetricPoll:
    """What one poll of the metric sources did."""

    read: int = 0
    samples: int = 0
    windows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)


def metric_sources_due(settings: Settings) -> bool:
    """Whether a poll should run for metric sources: always when any is configured.

    A scrape needs no reason (the endpoint has no "new bytes" to check), and
    a query source with no finished window costs nothing (it sends no request).
    """
    return bool(settings.telemetry.metrics)


def cursor_key(source: MetricSource) -> str:
    """The source's row in ``telemetry_cursor``."""
    return f"{source.name}:{source.url}"


# --- storing -----------------------------------------------------------------------


def store_metric_poll(
    session: Session,
    *,
    key: str,
    source: MetricSource,
    state: dict[str, Any],
    offset: int,
    rows: list[WindowRow],
    samples: int,
    rejected: Counter[str],
    now: datetime,
) -> int:
    """Write the finished windows and move the source's cursor, atomically; how many were new."""
    existing = window_store.windows_for_keys(
        session, [(r.component, r.instance, r.start) for r in rows]
    )
    measures = source.maps_requests
    counts = Counter(rejected)
    written = 0
    for row in rows:
        found = existing.get((row.component, row.instance, row.start))
        if found is not None:
            if row.gauges:
                found.gauges = {**found.gauges, **row.gauges}
                session.add(found)
            counts["window_exists"] += measures
            continue
        fresh = WindowRow(**row.model_dump())  # fresh: a retry must not reuse it
        fresh.closed = measures  # gauges alone: a log source may still add the requests
        session.add(fresh)
        written += 1
    cursor = session.get(CursorRow, key) or CursorRow(
        key=key, source=source.name, path=source.url, updated_at=now
    )
    cursor.head = json.dumps(state, allow_nan=False, separators=(",", ":"))
    cursor.offset = offset
    cursor.lines += samples
    cursor.rejected = dict(Counter(cursor.rejected) + counts)
    cursor.updated_at = now
    session.add(cursor)
    return written


def note_failure(
    session: Session, *, key: str, source: MetricSource, reason: str, now: datetime
) -> None:
    """Count a failed read on the source's cursor; its position and time stay as they were."""
    window_store.note_source_failure(
        session, key=key, source=source.name, path=source.url, reason=reason, now=now
    )


# --- one poll --------------------------------------------------------------------------


def poll_metric_sources(settings: Settings, db: Database, now: datetime) -> MetricPoll:
    """Scrape or query every metric source once; a failing source never stops the others."""
    poll = MetricPoll()
    if not settings.telemetry.metrics:
        return poll
    cursors = db.query(window_store.cursors)
    plans: list[tuple[MetricSource, dict[str, Any] | None, list[float]]] = []
    jobs: list[Job] = []
    for source in settings.telemetry.metrics:
        state = metric_sources.load_state(cursors.get(cursor_key(source)), source)
        if isinstance(source, ScrapeSourceSettings):
            jobs.append(
                ((source.name, "scrape"), source.timeout_s, metric_sources.scrape_job(source))
            )
            plans.append((source, state, []))
            continue
        written = state.get("end") if state else None
        end = float(written) if isinstance(written, int | float) else None
        ends = due_window_ends(source, settings.telemetry, end, now.timestamp())
        if ends:
            jobs.extend(query_jobs(source, settings.telemetry.window_s, ends))
            plans.append((source, state, ends))
    results = run_all(jobs)
    for source, state, ends in plans:
        _finish(source, settings, db, state, ends, results, now, poll)
    return poll


def _finish(
    source: MetricSource,
    settings: Settings,
    db: Database,
    state: dict[str, Any] | None,
    ends: list[float],
    results: dict[tuple[str, str], Any],
    now: datetime,
    poll: MetricPoll,
) -> None:
    key = cursor_key(source)
    rejected: Counter[str] = Counter()
    try:
        if isinstance(source, ScrapeSourceSettings):
            response = results.get((source.name, "scrape"))
            new_state, rows, samples = metric_sources.read_scrape(
                source, settings, state, response, now, rejected
            )
            offset = int(now.timestamp())
        else:
            new_state, rows, samples, notes = metric_sources.read_query(
                source, settings, ends, results, rejected
            )
            offset = int(ends[-1])
            if notes:
                poll.errors[source.name] = f"{'; '.join(notes)} ({source.url})"
    except SourceError as exc:
        poll.errors[source.name] = f"{exc.reason}: {exc} ({source.url})"
        poll.rejected[exc.reason] += 1
        db.transact(partial(note_failure, key=key, source=source, reason=exc.reason, now=now))
        return
    poll.windows += db.transact(
        partial(
            store_metric_poll,
            key=key,
            source=source,
            state=new_state,
            offset=offset,
            rows=rows,
            samples=samples,
            rejected=rejected,
            now=now,
        )
    )
    poll.read += 1
    poll.samples += samples
    poll.rejected.update(rejected)
