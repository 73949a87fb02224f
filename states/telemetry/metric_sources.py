"""What one metric source's answer becomes: finished windows and the source's next state.

A scrape source's state is its previous scrape: the values of the series it
maps and the increases of windows not finished yet (``pending``), so a
restart keeps the delta. The increase between two scrapes is attributed to
the window holding the middle of the interval between them, and a window is
finished by the first scrape taken after its end: count and errors from the
configured counters, P50/P95/P99 from the histogram's bucket increases.
Watched gauges are kept, last value wins, in the window holding the scrape's time.

A query source's state is the end of the last window it wrote; its answers
(one ``query_range`` per query) are already per window, and its gauges are
their queries' values at each window's end.

The state depends on the source's mapping: a changed mapping starts afresh
rather than compute a bogus delta. Fetching, storing and the cursor row are
``prometheus``'s.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from states.settings import Settings
from states.telemetry.metric_windows import (
    MetricWindow,
    ScrapeMapping,
    Tracked,
    WatchedGauge,
    fold_deltas,
    gauge_readings,
    tracked_series,
)
from states.telemetry.prometheus_api import HttpResponse, SourceError, http_request
from states.telemetry.prometheus_text import Selector, parse_exposition, parse_selector
from states.telemetry.query_windows import answers_of, query_windows
from states.telemetry.settings import QuerySourceSettings, ScrapeSourceSettings
from states.telemetry.windows import health_score, window_start
from storage.tables import CursorRow, WindowRow

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
STATE_VERSION = 1
MetricSource = ScrapeSourceSettings | QuerySourceSettings


def mapping_id(source: MetricSource) -> str:
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
            and state.get("mapping") == mapping_id(source)
            and isinstance(state.get("series", {}), dict)
            and all(isinstance(v, int | float) for v in state.get("series", {}).values())
        )
        if usable:
            pending_windows(state)  # readable too
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


def pending_windows(
    state: dict[str, Any] | None,
) -> dict[float, dict[tuple[str, str], MetricWindow]]:
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
    pending = pending_windows(state)
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
        "mapping": mapping_id(source),
        "at": at,
        "series": {key: t.value for key, t in tracked.items()},
        "pending": {
            repr(start): [[c, i, w.to_json()] for (c, i), w in windows.items()]
            for start, windows in pending.items()
        },
    }
    return new_state, rows


def scrape_job(source: ScrapeSourceSettings) -> Callable[[], HttpResponse]:
    return partial(
        http_request,
        source.url,
        timeout_s=source.timeout_s,
        max_bytes=source.max_bytes,
        headers={"Accept": ACCEPT, **source.headers},
    )


def read_scrape(
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


def read_query(
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
    state = {"version": STATE_VERSION, "mapping": mapping_id(source), "end": ends[-1]}
    return state, rows, sum(len(points) for points in answers.values()), notes
