"""Metric sources: Prometheus exposition endpoints (scraped) and servers (queried), into windows.

A scrape source's cursor is its previous scrape: the values of the series it
maps and the increases of windows not finished yet, as JSON in the ``head``
of its ``telemetry_cursor`` row (``offset`` holds the scrape's Unix time), so
a restart keeps the delta. The increase between two scrapes is attributed to
the window holding the middle of the interval between them, and a window is
written, closed, by the first scrape taken after its end: count and errors
from the configured counters, P50/P95/P99 from the histogram's bucket increases.

A query source's cursor is the end of the last window it wrote. Each poll
asks the server, with one ``query_range`` per configured query, for the
windows that ended at least ``lateness_s`` ago.

Every source is fetched at the same time with its own deadline; one that is
missing, slow or answers nonsense is reported in the poll's errors and as a
reason count on its cursor (shown by ``selfheal status``), and the others go on.
A window another source already wrote is left alone (counted as ``window_exists``):
feed each component's requests from one source.

Gauges a component watches (``[[components.<name>.gauges]]``) are read from
every scrape and kept, last value wins, in the window holding the scrape's
time; a query source's gauges (``[[telemetry.metrics.gauges]]``) are its
queries' values at each window's end. They are the exception to "one source per window": they are merged
into a window a log source wrote, and a source that maps no requests writes
its windows open, so that a log source can still add the requests and the
window closes as a log window does.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from states.settings import QuerySourceSettings, ScrapeSourceSettings, Settings
from states.telemetry.prometheus_api import (
    HttpResponse,
    Job,
    SourceError,
    answers_of,
    due_window_ends,
    http_request,
    query_jobs,
    query_windows,
    run_all,
)
from states.telemetry.prometheus_text import (
    MetricWindow,
    ScrapeMapping,
    Selector,
    Tracked,
    WatchedGauge,
    fold_deltas,
    gauge_readings,
    parse_exposition,
    parse_selector,
    tracked_series,
)
from states.telemetry.windows import health_score, window_start
from storage import repository as repo
from storage.db import Database
from storage.repository import Session
from storage.tables import CursorRow, WindowRow

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
STATE_VERSION = 1
MetricSource = ScrapeSourceSettings | QuerySourceSettings


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


def _mapping_id(source: MetricSource) -> str:
    """What the stored state depends on; a changed mapping starts afresh (no bogus delta)."""
    if isinstance(source, ScrapeSourceSettings):
        parts = [source.requests, source.errors, source.latency, source.instance_label]
    else:
        parts = [source.queries.model_dump_json()]
    return json.dumps([source.kind, source.component_label, source.component, *parts])


def load_state(row: CursorRow | None, source: MetricSource) -> dict[str, Any] | None:
    """The source's stored state, or None to start afresh (none, unreadable or stale)."""
    if row is None or not row.head:
        return None
    try:
        state = json.loads(row.head)
        usable = (
            isinstance(state, dict)
            and state.get("version") == STATE_VERSION
            and state.get("mapping") == _mapping_id(source)
            and isinstance(state.get("series", {}), dict)
            and all(isinstance(v, int | float) for v in state.get("series", {}).values())
        )
        if usable:
            _pending(state)  # readable too
    except (TypeError, ValueError, AttributeError):
        return None  # edited by hand, or written by a version that stored it differently
    return state if usable else None


def window_row(
    key: tuple[str, str, datetime],
    window: MetricWindow,
    *,
    settings: Settings,
    scale: float,
    counted: bool,
) -> WindowRow:
    """A closed window from what the metrics said; the statistics ``close_window`` would compute.

    ``counted``: the count comes from a requests counter (or query); otherwise
    from the histogram's observations, and a query source without one has none.
    """
    component, instance, start = key
    count = round(
        window.count if counted or not window.buckets else window.buckets.get(math.inf, 0)
    )
    errors = max(0, round(window.errors))
    rate = window.values.get("error_rate")
    if rate is not None and not errors and count:
        errors = round(rate * count)
    errors = min(errors, count) if count else errors
    if rate is None:
        rate = errors / count if count else 0.0
    quantiles = window.quantiles(scale)
    slo = settings.component(component).slo_p95_ms
    judged = count > 0 or (not counted and not window.buckets)
    return WindowRow(
        component=component,
        instance=instance,
        start=start,
        end=start + timedelta(seconds=settings.telemetry.window_s),
        count=max(0, count),
        errors=errors,
        error_rate=rate,
        p50=quantiles["p50"],
        p95=quantiles["p95"],
        p99=quantiles["p99"],
        health=health_score(rate, quantiles["p95"], slo) if judged else None,
        closed=True,
        gauges=dict(window.gauges),
    )


# --- scrape sources ------------------------------------------------------------------


def scrape_mapping(source: ScrapeSourceSettings) -> ScrapeMapping:
    """The source's selectors and labels (validated when the settings were loaded)."""

    def selector(text: str | None) -> Selector | None:
        return parse_selector(text) if text is not None else None

    return ScrapeMapping(
        requests=selector(source.requests),
        errors=selector(source.errors),
        latency=selector(source.latency),
        component_label=source.component_label,
        component=source.component,
        instance_label=source.instance_label,
    )


def watched_gauges(settings: Settings) -> list[WatchedGauge]:
    """Every gauge any component watches."""
    return [
        WatchedGauge(component, gauge.name, parse_selector(gauge.selector))
        for component, comp in settings.components.items()
        for gauge in comp.gauges
        if gauge.selector is not None
    ]


def _pending(state: dict[str, Any] | None) -> dict[float, dict[tuple[str, str], MetricWindow]]:
    pending: dict[float, dict[tuple[str, str], MetricWindow]] = {}
    for start, entries in (state or {}).get("pending", {}).items():
        pending[float(start)] = {
            (component, instance): MetricWindow.from_json(window)
            for component, instance, window in entries
        }
    return pending


def scrape_update(
    source: ScrapeSourceSettings,
    settings: Settings,
    state: dict[str, Any] | None,
    tracked: dict[str, Tracked],
    now: datetime,
    rejected: Counter[str],
    gauges: dict[tuple[str, str], dict[str, float]] | None = None,
) -> tuple[dict[str, Any], list[WindowRow]]:
    """Fold this scrape's increase into its window: the new state, and the windows now finished.

    ``gauges`` are this scrape's readings; they go to the window holding ``now``.
    """
    window_s = settings.telemetry.window_s
    at = now.timestamp()
    pending = _pending(state)
    if gauges:
        current = pending.setdefault(window_start(now, window_s).timestamp(), {})
        for target, values in gauges.items():
            current.setdefault(target, MetricWindow()).gauges.update(values)
    previous_at = state.get("at") if state else None
    if state is not None and isinstance(previous_at, int | float):
        if at - previous_at > source.max_gap_s:
            rejected["gap"] += 1
        elif at > previous_at:
            middle = datetime.fromtimestamp((at + previous_at) / 2, UTC)
            windows = pending.setdefault(window_start(middle, window_s).timestamp(), {})
            for target, delta in fold_deltas(tracked, state.get("series", {})).items():
                windows.setdefault(target, MetricWindow()).add(delta)
    oldest = at - settings.telemetry.retention_s
    rows: list[WindowRow] = []
    for start in sorted(s for s in pending if s + window_s <= at):
        for (component, instance), window in pending.pop(start).items():
            if start < oldest:
                rejected["too_old"] += 1
                continue
            key = (component, instance, datetime.fromtimestamp(start, UTC))
            rows.append(
                window_row(
                    key,
                    window,
                    settings=settings,
                    scale=source.latency_scale,
                    counted=source.requests is not None,
                )
            )
    new_state = {
        "version": STATE_VERSION,
        "mapping": _mapping_id(source),
        "at": at,
        "series": {key: t.value for key, t in tracked.items()},
        "pending": {
            repr(start): [[c, i, w.to_json()] for (c, i), w in windows.items()]
            for start, windows in pending.items()
        },
    }
    return new_state, rows


def _scrape_job(source: ScrapeSourceSettings) -> Callable[[], HttpResponse]:
    return partial(
        http_request,
        source.url,
        timeout_s=source.timeout_s,
        max_bytes=source.max_bytes,
        headers={"Accept": ACCEPT, **source.headers},
    )


def _read_scrape(
    source: ScrapeSourceSettings,
    settings: Settings,
    state: dict[str, Any] | None,
    response: object,
    now: datetime,
    rejected: Counter[str],
) -> tuple[dict[str, Any], list[WindowRow], int]:
    if isinstance(response, SourceError):
        raise response
    if not isinstance(response, HttpResponse):
        raise SourceError("failed", "no response")
    if response.status != 200:
        text = " ".join(response.body[:200].decode("utf-8", "replace").split())
        raise SourceError("http_error", f"HTTP {response.status}: {text}")
    exposition = parse_exposition(response.body.decode("utf-8", "replace"))
    rejected.update(exposition.rejected)
    mapping = scrape_mapping(source)
    tracked = tracked_series(exposition, mapping, rejected)
    gauges = gauge_readings(exposition, watched_gauges(settings), mapping, rejected)
    new_state, rows = scrape_update(source, settings, state, tracked, now, rejected, gauges)
    return new_state, rows, sum(len(f.samples) for f in exposition.families.values())


def _read_query(
    source: QuerySourceSettings,
    settings: Settings,
    ends: list[float],
    results: dict[tuple[str, str], Any],
    rejected: Counter[str],
) -> tuple[dict[str, Any], list[WindowRow], int, list[str]]:
    answers = answers_of(source, results)
    window_s = settings.telemetry.window_s
    windows, notes = query_windows(source, window_s, ends, answers, rejected)
    rows = [
        window_row(
            (component, "", datetime.fromtimestamp(start, UTC)),
            window,
            settings=settings,
            scale=1.0,
            counted=source.queries.count is not None,
        )
        for (component, start), window in sorted(windows.items())
    ]
    state = {"version": STATE_VERSION, "mapping": _mapping_id(source), "end": ends[-1]}
    return state, rows, sum(len(points) for points in answers.values()), notes


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
    existing = repo.windows_for_keys(session, [(r.component, r.instance, r.start) for r in rows])
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
    repo.note_source_failure(
        session, key=key, source=source.name, path=source.url, reason=reason, now=now
    )


# --- one poll --------------------------------------------------------------------------


def poll_metric_sources(settings: Settings, db: Database, now: datetime) -> MetricPoll:
    """Scrape or query every metric source once; a failing source never stops the others."""
    poll = MetricPoll()
    if not settings.telemetry.metrics:
        return poll
    cursors = db.query(repo.cursors)
    plans: list[tuple[MetricSource, dict[str, Any] | None, list[float]]] = []
    jobs: list[Job] = []
    for source in settings.telemetry.metrics:
        state = load_state(cursors.get(cursor_key(source)), source)
        if isinstance(source, ScrapeSourceSettings):
            jobs.append(((source.name, "scrape"), source.timeout_s, _scrape_job(source)))
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
            new_state, rows, samples = _read_scrape(
                source, settings, state, response, now, rejected
            )
            offset = int(now.timestamp())
        else:
            new_state, rows, samples, notes = _read_query(source, settings, ends, results, rejected)
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
