"""Folding records into fixed per-component windows, and what a window says about health.

Quantiles are computed from the window's own samples (nearest-rank, so every
reported value is a latency that was actually observed) while a window has at
most 1,024 of them, and from a bounded sketch within 1% after that (see
``sketches``). The health score is
documented in ``health_score`` and uses only measured values and the
component's own objective.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from states.telemetry.operations import Figures, OperationTally, figures_of
from states.telemetry.records import Record
from states.telemetry.sketches import LatencySketch, exact_quantiles

WindowKey = tuple[str, str, datetime]  # component, instance ("" = all), start
MAX_FRAMES = 20


def window_start(moment: datetime, window_s: float) -> datetime:
    """The start of the fixed window holding ``moment`` (aligned to the Unix epoch)."""
    epoch = moment.timestamp()
    return datetime.fromtimestamp(math.floor(epoch / window_s) * window_s, UTC)


@dataclass
class PartialWindow:
    """What one poll saw of one window; merged into the stored window.

    Durations are in ``samples`` (in ascending order: a window's samples are
    a multiset, and one order for it makes every ingestion path store the
    same window), or in ``sketch`` when there were too many to keep one by
    one. ``templates`` counts mined messages per template key,
    ``new_templates`` lists the keys first seen in this poll and
    ``operations`` holds the figures per operation (see ``operations``).
    """

    count: int = 0
    errors: int = 0
    samples: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    frames: list[list[object]] = field(default_factory=list)
    sketch: LatencySketch | None = None
    templates: Counter[str] = field(default_factory=Counter)
    new_templates: list[str] = field(default_factory=list)
    operations: dict[str, Figures] = field(default_factory=dict)


def fold(records: Iterable[Record], window_s: float) -> dict[WindowKey, PartialWindow]:
    """Group records by component window, both per instance and for all instances."""
    partials: dict[WindowKey, PartialWindow] = {}
    operations: dict[WindowKey, dict[str, OperationTally]] = {}
    starts: dict[int, datetime] = {}  # window start by its epoch bucket: one datetime per window
    for record in records:
        bucket = math.floor(record.timestamp.timestamp() / window_s)
        start = starts.get(bucket)
        if start is None:
            start = starts[bucket] = window_start(record.timestamp, window_s)
        error = record.is_error
        keys = [(record.component, "", start)]
        if record.instance:
            keys.append((record.component, record.instance, start))
        for key in keys:
            part = partials.get(key)
            if part is None:
                part = partials[key] = PartialWindow()
            _add(part, record, error)
            if record.operation:
                tallies = operations.setdefault(key, {})
                tally = tallies.setdefault(record.operation, OperationTally())
                tally.add_record(error, record.duration_ms)
    for key, tallies in operations.items():
        partials[key].operations = figures_of(tallies)
    for part in partials.values():
        part.samples.sort()
    return partials


def _add(part: PartialWindow, record: Record, error: bool) -> None:
    part.count += 1
    if error:
        part.errors += 1
    if record.duration_ms is not None:
        part.samples.append(record.duration_ms)
    if record.version:
        part.versions[record.version] += 1
    for frame in record.frames:
        entry: list[object] = [frame.file, frame.line, frame.function]
        if len(part.frames) < MAX_FRAMES and entry not in part.frames:
            part.frames.append(entry)


def quantile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile: the smallest sample with at least ``q`` of samples at or below it."""
    return quantiles(samples, (q,))[0]


def quantiles(samples: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Several nearest-rank quantiles from one sort."""
    return exact_quantiles(samples, qs)


def health_score(error_rate: float, p95_ms: float | None, slo_p95_ms: float | None) -> float:
    """Health in [0, 100]: 100 x (1 - error rate) x min(1, objective P95 / measured P95).

    A component with no latency objective, or no timed requests, is judged on
    its error rate alone. Nothing here is a weight someone picked: a window at
    twice its latency objective with 10% errors scores 100 x 0.9 x 0.5 = 45.
    """
    latency_factor = 1.0
    if slo_p95_ms is not None and p95_ms is not None and p95_ms > 0:
        latency_factor = min(1.0, slo_p95_ms / p95_ms)
    return round(100.0 * (1.0 - error_rate) * latency_factor, 2)


def closes_at(start: datetime, window_s: float, lateness_s: float) -> datetime:
    """When a window starting at ``start`` stops accepting records."""
    return start + timedelta(seconds=window_s + lateness_s)
