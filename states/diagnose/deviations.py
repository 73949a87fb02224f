"""How far each component's metrics moved, in units of their own normal spread.

Components differ by orders of magnitude (a table answers in 10 ms, a page in
900 ms), so a raw change means nothing across components.  Every metric is
measured against its own normal period: median as centre, and as spread the
largest of the scaled MAD, the harmful tail of the normal values (a metric
that spikes now and then must spike further to count) and a floor relative
to its level (so a flat 100 % availability still has a finite spread).  Only
the harmful direction counts — a faster answer is not a symptom — so each
metric carries a direction: +1 when a rise hurts (latency), -1 when a fall
hurts (availability).

Reference days often sit at a slightly different level than the incident's
day; measuring the incident against the calmest point just before the onset
removes that drift, so a component that was already off before the incident
is not mistaken for the one that broke.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MAD_TO_SIGMA = 1.4826
TAIL_PERCENT = 1.0
TAIL_TO_SIGMA = 2.326  # the 1 % tail of a normal distribution, in sigmas
MIN_REFERENCE_ROWS = 3


@dataclass(frozen=True)
class ComponentWindow:
    """Aligned per-component metrics around one incident.

    ``series[component][metric]`` are equally long arrays on shared timestamps
    (NaN where nothing was reported).  ``normal`` indexes the rows known to be
    healthy; rows from ``onset`` to the end are the incident.  The normal rows
    need not be contiguous: a reference day may be joined with the minutes
    just before the incident.
    """

    series: Mapping[str, Mapping[str, FloatArray]]
    normal: tuple[int, ...]
    onset: int

    def __post_init__(self) -> None:
        lengths = {len(v) for metrics in self.series.values() for v in metrics.values()}
        if len(lengths) > 1:
            raise ValueError(f"metric arrays must share one length, got lengths {sorted(lengths)}")
        length = lengths.pop() if lengths else 0
        if not 0 <= self.onset < max(length, 1):
            raise ValueError(f"onset {self.onset} is outside the {length} aligned rows")
        if any(index >= self.onset or index < 0 for index in self.normal):
            raise ValueError("normal rows must lie before the onset")

    @property
    def recent(self) -> tuple[int, ...]:
        """Normal rows immediately preceding the onset, in time order."""
        normal = set(self.normal)
        start = self.onset
        while start - 1 in normal:
            start -= 1
        return tuple(range(start, self.onset))


@dataclass(frozen=True)
class DeviationSettings:
    """How symptoms are measured.

    ``directions`` maps a metric name to +1 (rise hurts) or -1 (fall hurts);
    metrics not named are not symptoms and are ignored.  ``recent_points``
    bounds how many rows before the onset give the local level;
    ``persistence`` is how many incident rows a deviation must hold for
    (the k-th largest row counts, so one spike is not an incident);
    ``threshold`` is the shift, in spreads, from which a metric is anomalous;
    ``lead_rows`` lets a fault that began that many rows before the declared
    onset count with its full length; ``min_coverage`` is the share of
    normal rows a metric must report to be judged at all (a metric seen a
    handful of times has no known normal).
    """

    directions: Mapping[str, float]
    relative_floor: float = 0.001
    absolute_floor: float = 1e-9
    recent_points: int = 2
    persistence: int = 2
    threshold: float = 3.0
    min_coverage: float = 0.25
    lead_rows: int = 1


@dataclass(frozen=True)
class MetricShift:
    """One metric's shift during the incident: in spreads, in its own units, and when.

    ``level`` is the metric's normal median, kept so callers can compare
    components on the same metric (a wrapper answers no faster than what it wraps).
    """

    metric: str
    z: float
    delta: float
    onset: int | None
    level: float = 0.0


def robust_scale(normal_values: FloatArray, direction: float, settings: DeviationSettings) -> float:
    """Spread of the normal values: MAD, harmful tail or relative floor, whichever is largest."""
    finite = normal_values[np.isfinite(normal_values)]
    if finite.size == 0:
        return float("nan")
    centre = float(np.median(finite))
    mad = float(np.median(np.abs(finite - centre))) * MAD_TO_SIGMA
    tail_at = 100.0 - TAIL_PERCENT if direction > 0 else TAIL_PERCENT
    tail = abs(float(np.percentile(finite, tail_at)) - centre) / TAIL_TO_SIGMA
    return max(mad, tail, settings.relative_floor * abs(centre), settings.absolute_floor)


def harmful_z(
    values: FloatArray, normal: Sequence[int], direction: float, scale: float
) -> FloatArray:
    """Per-row deviation from the normal median in the harmful direction, in spreads (NaN kept)."""
    centre = float(np.nanmedian(values[list(normal)]))
    return direction * (values - centre) / scale


def sustained(during: FloatArray, persistence: int) -> float:
    """The deviation held for at least ``persistence`` rows (missing rows count as 0)."""
    if during.size == 0:
        return 0.0
    ordered = np.sort(np.nan_to_num(during, nan=0.0))[::-1]
    return float(ordered[min(persistence, ordered.size) - 1])


def recent_level(z: FloatArray, recent: Sequence[int]) -> float:
    """The calmest harmful level just before the onset, never below normal."""
    before = z[list(recent)]
    before = before[np.isfinite(before)]
    return max(0.0, float(np.min(before))) if before.size else 0.0


def first_breach(z: FloatArray, start: int, threshold: float) -> int | None:
    """First row from ``start`` on whose deviation reaches the threshold."""
    hits = np.flatnonzero(np.nan_to_num(z[start:], nan=0.0) >= threshold)
    return int(hits[0]) + start if hits.size else None


def reference_rows(normal: Sequence[int], recent: Sequence[int]) -> tuple[int, ...]:
    """Normal rows that set centre and spread: all but the recent ones, if enough remain.

    The rows just before the onset give the local level; keeping them out of
    the spread stops a fault that began a row early from inflating it.
    """
    held_out = set(recent)
    rest = tuple(i for i in normal if i not in held_out)
    return rest if len(rest) >= MIN_REFERENCE_ROWS else tuple(normal)


def metric_shift(
    metric: str, values: FloatArray, window: ComponentWindow, settings: DeviationSettings
) -> MetricShift | None:
    """How far one metric moved during the incident, or None without normal data."""
    direction = settings.directions[metric]
    recent = window.recent[-settings.recent_points :] if settings.recent_points else ()
    reference = reference_rows(window.normal, recent)
    normal_values = values[list(reference)]
    if np.count_nonzero(np.isfinite(normal_values)) < settings.min_coverage * len(reference):
        return None
    scale = robust_scale(normal_values, direction, settings)
    if not np.isfinite(scale):
        return None
    z = harmful_z(values, reference, direction, scale)
    above = z - recent_level(z, recent)
    first = max(0, window.onset - settings.lead_rows)
    shift = max(0.0, sustained(above[first:], settings.persistence))
    start = recent[0] if recent else window.onset
    level = float(np.nanmedian(values[list(reference)]))
    onset = first_breach(above, start, settings.threshold)
    return MetricShift(metric, shift, shift * scale, onset, level)


def component_shifts(
    metrics: Mapping[str, FloatArray], window: ComponentWindow, settings: DeviationSettings
) -> dict[str, MetricShift]:
    """Shifts of every symptom metric the component reports."""
    found = {}
    for metric in settings.directions:
        values = metrics.get(metric)
        shift = metric_shift(metric, values, window, settings) if values is not None else None
        if shift is not None:
            found[metric] = shift
    return found


def all_shifts(
    window: ComponentWindow, settings: DeviationSettings
) -> dict[str, dict[str, MetricShift]]:
    """Component -> metric -> shift, for every component in the window."""
    return {c: component_shifts(m, window, settings) for c, m in window.series.items()}
