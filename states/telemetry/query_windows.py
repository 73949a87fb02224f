"""A query source's windows: which are due, what is asked over them, what the answers say.

A query source writes finished windows only, oldest first, from the end of the
last one written (its cursor) or a backfill on first poll, and never more than
``max_windows_per_poll`` at once. Each configured PromQL (window fields, then
gauges as ``gauge:<name>``) is one ``query_range`` over the due windows' ends;
a point becomes a field of the window it ends, in the component its label
names. A value that fits no window, no component, or is not finite is counted
as rejected and skipped, never written. The requests themselves are
``prometheus_api``'s.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import Any

from states.telemetry.metric_windows import MetricWindow
from states.telemetry.prometheus_api import Job, QueryPoint, SourceError, duration, query_range
from states.telemetry.settings import QuerySourceSettings, TelemetrySettings

FIELDS = ("count", "errors", "error_rate", "p50", "p95", "p99")
GAUGE = "gauge:"  # answer names of a query source's gauges


def due_window_ends(
    source: QuerySourceSettings, telemetry: TelemetrySettings, written: float | None, now: float
) -> list[float]:
    """Ends (Unix seconds) of the windows to ask for at ``now``, oldest first.

    ``written`` is the end of the last window written (the cursor); without
    one, the last ``backfill_windows`` windows are due.
    """
    window_s = telemetry.window_s
    last = math.floor((now - telemetry.lateness_s) / window_s) * window_s
    first = last - (source.backfill_windows - 1) * window_s
    if written is not None:
        first = written + window_s
    oldest = now - telemetry.retention_s + window_s
    first = max(first, math.ceil(oldest / window_s) * window_s)
    count = min(source.max_windows_per_poll, round((last - first) / window_s) + 1)
    return [first + i * window_s for i in range(max(0, count))]


def source_queries(source: QuerySourceSettings) -> dict[str, str]:
    """Every PromQL the source asks, by answer name: window fields, then ``gauge:<name>``."""
    fields = {name: getattr(source.queries, name) for name in FIELDS}
    queries = {name: promql for name, promql in fields.items() if promql is not None}
    return queries | {GAUGE + gauge.name: gauge.query for gauge in source.gauges}


def query_jobs(source: QuerySourceSettings, window_s: float, ends: list[float]) -> list[Job]:
    """One ``query_range`` per configured query, over the due windows (``$window`` substituted)."""
    jobs: list[Job] = []
    for name, promql in source_queries(source).items():
        work = partial(
            query_range,
            source.url,
            promql.replace("$window", duration(window_s)),
            start=ends[0],
            end=ends[-1],
            step=window_s,
            timeout_s=source.timeout_s,
            max_bytes=source.max_bytes,
            headers=source.headers,
        )
        jobs.append(((source.name, name), source.timeout_s, work))
    return jobs


def answers_of(
    source: QuerySourceSettings, results: Mapping[tuple[str, str], Any]
) -> dict[str, list[QueryPoint]]:
    """Each query's points; the first failed query fails the source (nothing is half-written)."""
    answers: dict[str, list[QueryPoint]] = {}
    for name in source_queries(source):
        result = results.get((source.name, name))
        if isinstance(result, SourceError):
            raise SourceError(result.reason, f"query {name}: {result}")
        if result is not None:
            answers[name] = result
    return answers


def query_windows(
    source: QuerySourceSettings,
    window_s: float,
    ends: list[float],
    answers: Mapping[str, list[QueryPoint]],
    rejected: Counter[str],
) -> tuple[dict[tuple[str, float], MetricWindow], list[str]]:
    """The windows (component, start) the answers describe, and notes on skipped values."""
    starts = {round(end * 1000): end - window_s for end in ends}
    windows: dict[tuple[str, float], MetricWindow] = {}
    notes: list[str] = []
    for name, points in answers.items():
        kept, bad = finite(points)
        if bad:
            rejected["not_finite"] += bad
            notes.append(f"{name}: {bad} NaN/Inf value(s) skipped")
        for point in kept:
            start = starts.get(round(point.timestamp * 1000))
            component = point.labels.get(source.component_label) or source.component
            if start is None:
                rejected["unexpected_timestamp"] += 1
            elif not component:
                rejected["no_component"] += 1
            elif name.startswith(GAUGE):
                windows.setdefault((component, start), MetricWindow()).keep_gauge(
                    name.removeprefix(GAUGE), point.value
                )
            elif not windows.setdefault((component, start), MetricWindow()).put(
                name, point.value, source.latency_scale
            ):
                rejected["bad_value"] += 1
    return windows, notes


def finite(points: list[QueryPoint]) -> tuple[list[QueryPoint], int]:
    """The points with finite values, and how many were NaN or infinite."""
    kept = [p for p in points if math.isfinite(p.value)]
    return kept, len(points) - len(kept)
