"""What scrapes and query answers say about a window: counter increases, quantiles, gauges.

Separate from reading the text format (``prometheus_text``): this is the
arithmetic, and it is shared by the scrape source (increases between two
scrapes, bucket counts) and the query source (values the server computed).
``increase`` and ``histogram_quantile`` follow Prometheus's own definitions
(counter resets; linear interpolation within the bucket holding the rank), so
a value derived here matches what a Prometheus server reports for the same data.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from states.telemetry.prometheus_text import Exposition, Malformed, Selector, parse_value

# --- arithmetic --------------------------------------------------------------------


def increase(previous: float | None, current: float) -> float:
    """How much a counter grew; a drop is a reset (the process restarted and counts from zero)."""
    if previous is None or current < previous:
        return current
    return current - previous


def rate(previous: float | None, current: float, seconds: float) -> float:
    """Per-second increase over ``seconds``."""
    if seconds <= 0:
        raise ValueError("a rate needs a positive interval")
    return increase(previous, current) / seconds


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus computes it.

    NaN when undefined (no ``+Inf`` bucket, fewer than two buckets, no
    observations). Within the bucket that holds rank ``q x total`` the value
    is interpolated linearly from its lower bound (0 for the first bucket);
    a rank in the ``+Inf`` bucket yields the highest finite bound.
    """
    if not 0 <= q <= 1:
        return q if math.isnan(q) else (-math.inf if q < 0 else math.inf)
    bounds, counts = _cumulative(buckets)
    if not counts or not counts[-1] > 0:
        return math.nan
    return _interpolate(q * counts[-1], bounds, counts)


def _cumulative(buckets: Iterable[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Sorted bounds (equal bounds merged) and counts forced monotonic; empty if unusable."""
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return [], []
    counts: list[float] = []
    for _, count in ordered:  # skewed scrapes can leave a bucket below the one before it
        counts.append(max(count, counts[-1]) if counts else count)
    return [bound for bound, _ in ordered], counts


def _interpolate(rank: float, bounds: list[float], counts: list[float]) -> float:
    b = next((i for i, c in enumerate(counts[:-1]) if c >= rank), len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count <= 0:  # only for q = 0 over an empty first bucket: 0/0, as in Prometheus
        return math.nan
    return start + (bounds[b] - start) * (rank / count)


# --- from scrapes to windows ---------------------------------------------------------

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass
class MetricWindow:
    """What the metrics say about one component (and instance) in one window so far.

    A scrape source adds counter and bucket increases; a query source puts the
    values the server computed (``put``), latencies already in milliseconds.
    ``gauges`` holds the last reading of each watched gauge in the window.
    """

    count: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)

    def add(self, other: MetricWindow) -> None:
        """Add another increase of the same window."""
        self.count += other.count
        self.errors += other.errors
        for bound, count in other.buckets.items():
            self.buckets[bound] = self.buckets.get(bound, 0.0) + count

    def put(self, name: str, value: float, latency_scale: float) -> bool:
        """Take a computed value (``count``, ``errors``, ``error_rate``, ``p50`` ...); False if impossible."""
        if value < 0 or (name == "error_rate" and value > 1):
            return False
        if name == "count":
            self.count += value
        elif name == "errors":
            self.errors += value
        else:
            scaled = value if name == "error_rate" else value * latency_scale
            self.values[name] = max(scaled, self.values.get(name, scaled))
        return True

    def keep_gauge(self, name: str, value: float) -> None:
        """A gauge's reading; of several series of one window, the largest (nearest its limit)."""
        self.gauges[name] = max(value, self.gauges.get(name, -math.inf))

    def quantiles(self, latency_scale: float) -> dict[str, float | None]:
        """P50/P95/P99 from the buckets (scaled), else the values put; None where undefined."""
        result: dict[str, float | None] = {}
        for name, q in QUANTILES:
            if self.buckets:
                value = histogram_quantile(q, self.buckets.items()) * latency_scale
                result[name] = value if math.isfinite(value) else None
            else:
                result[name] = self.values.get(name)
        return result

    def to_json(self) -> list[Any]:
        """A compact JSON form for the cursor (bounds as text: ``inf`` is not JSON)."""
        data = [self.count, self.errors, [[repr(b), c] for b, c in self.buckets.items()]]
        return [*data, self.gauges] if self.gauges else data

    @classmethod
    def from_json(cls, data: list[Any]) -> MetricWindow:
        """The inverse of ``to_json`` (a cursor written before gauges has three items)."""
        count, errors, buckets, *rest = data
        gauges = {str(k): float(v) for k, v in rest[0].items()} if rest else {}
        buckets = {float(b): float(c) for b, c in buckets}
        return cls(float(count), float(errors), buckets, gauges=gauges)


@dataclass(frozen=True, slots=True)
class Tracked:
    """One scraped series a source maps: its role, component and value.

    ``group`` names the series a reset is judged on together: a histogram's
    buckets reset as one, a counter on its own.
    """

    role: str  # "requests" | "errors" | "latency"
    group: str
    component: str
    instance: str
    bound: float
    value: float


@dataclass(frozen=True)
class ScrapeMapping:
    """How a scrape's series map to windows (from a scrape source's settings)."""

    requests: Selector | None
    errors: Selector | None
    latency: Selector | None
    component_label: str
    component: str | None = None
    instance_label: str | None = None


def _roles(mapping: ScrapeMapping) -> list[tuple[str, Selector, str]]:
    roles = []
    for role, selector, suffix in (
        ("requests", mapping.requests, ""),
        ("errors", mapping.errors, ""),
        ("latency", mapping.latency, "_bucket"),
    ):
        if selector is not None:
            roles.append((role, selector, selector.name + suffix))
    return roles


def tracked_series(
    exposition: Exposition, mapping: ScrapeMapping, rejected: Counter[str]
) -> dict[str, Tracked]:
    """The series of a scrape that a source maps, by a key stable across scrapes."""
    tracked: dict[str, Tracked] = {}
    roles = _roles(mapping)
    for sample in exposition.samples():
        for role, selector, name in roles:
            if not selector.matches(sample, name):
                continue
            bound = math.inf
            if role == "latency":
                try:
                    bound = parse_value(sample.label("le") or "")
                except Malformed:
                    rejected["bad_bucket"] += 1
                    continue
            if not math.isfinite(sample.value) or sample.value < 0:
                rejected["bad_counter"] += 1
                continue
            component = sample.label(mapping.component_label) or mapping.component
            if not component:
                rejected["no_component"] += 1
                continue
            instance = (
                sample.label(mapping.instance_label) if mapping.instance_label else ""
            ) or ""
            rest = [kv for kv in sample.labels if not (role == "latency" and kv[0] == "le")]
            group = json.dumps([role, sample.name, rest])
            key = json.dumps([role, sample.name, sample.labels]) if role == "latency" else group
            tracked[key] = Tracked(role, group, component, instance, bound, sample.value)
    return tracked


@dataclass(frozen=True)
class WatchedGauge:
    """A gauge a component watches: its name in windows and the selector of its series."""

    component: str
    name: str
    selector: Selector


def gauge_readings(
    exposition: Exposition,
    watched: Sequence[WatchedGauge],
    mapping: ScrapeMapping,
    rejected: Counter[str],
) -> dict[tuple[str, str], dict[str, float]]:
    """Each watched gauge's value per (component, instance), ``""`` being all instances.

    A selector matching several series of one component (instances, or labels
    the selector leaves open) keeps the largest: the series nearest its limit.
    """
    readings: dict[tuple[str, str], dict[str, float]] = {}
    for sample in exposition.samples():
        for watch in watched:
            if not watch.selector.matches(sample):
                continue
            component = sample.label(mapping.component_label) or mapping.component
            if component != watch.component:
                rejected["no_component"] += component is None
                continue
            if not math.isfinite(sample.value):
                rejected["bad_gauge"] += 1
                continue
            instance = (
                sample.label(mapping.instance_label) if mapping.instance_label else ""
            ) or ""
            for target in [(component, "")] + ([(component, instance)] if instance else []):
                values = readings.setdefault(target, {})
                values[watch.name] = max(sample.value, values.get(watch.name, -math.inf))
    return readings


def fold_deltas(
    tracked: Mapping[str, Tracked], previous: Mapping[str, float]
) -> dict[tuple[str, str], MetricWindow]:
    """The increase since ``previous`` per (component, instance), ``""`` being all instances.

    A series absent from the previous scrape is new and counts from zero; a
    group with any value lower than before was reset and counts from zero.
    """
    reset = {t.group for key, t in tracked.items() if key in previous and t.value < previous[key]}
    windows: dict[tuple[str, str], MetricWindow] = {}
    for key, t in tracked.items():
        delta = increase(None if t.group in reset else previous.get(key), t.value)
        targets = [(t.component, "")] + ([(t.component, t.instance)] if t.instance else [])
        for target in targets:
            window = windows.setdefault(target, MetricWindow())
            if t.role == "requests":
                window.count += delta
            elif t.role == "errors":
                window.errors += delta
            else:
                window.buckets[t.bound] = window.buckets.get(t.bound, 0.0) + delta
    return windows
