"""Slow resource-exhaustion trends (memory leaks, filling disks) that point detectors miss.

A leak raises a metric a little every window, so no single point is anomalous
and a baseline that adapts to level shifts learns the leak as normal.  A robust
slope (Theil-Sen, the median of pairwise slopes, unmoved by spikes) with a
Mann-Kendall test (does the series rise more often than chance allows?) says
whether there is a trend at all, and extrapolating the slope says when the
configured limit will be reached, which is what makes the trend actionable.
Pure functions over (epoch seconds, value) pairs; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DEFAULT_ALPHA = 0.05
# Pairwise methods are O(n^2); thin longer series evenly to keep one call cheap.
DEFAULT_MAX_POINTS = 1000
MIN_POINTS = 4


@dataclass(frozen=True)
class Trend:
    """A fitted trend and, when a limit was given, when the series is projected to reach it."""

    slope_per_second: float
    intercept: float
    p_value: float
    significant: bool
    projected_exhaustion_at: float | None


def theil_sen(times: NDArray[np.float64], values: NDArray[np.float64]) -> tuple[float, float]:
    """Median pairwise slope and the median intercept that goes with it."""
    i, j = np.triu_indices(len(times), k=1)
    dt = times[j] - times[i]
    usable = dt != 0
    if not usable.any():
        return 0.0, float(np.median(values))
    slope = float(np.median((values[j] - values[i])[usable] / dt[usable]))
    return slope, float(np.median(values - slope * times))


def mann_kendall_p_value(values: NDArray[np.float64]) -> float:
    """Two-sided p-value of the Mann-Kendall test for a monotonic trend (values in time order)."""
    n = len(values)
    i, j = np.triu_indices(n, k=1)
    s = float(np.sign(values[j] - values[i]).sum())
    _, tie_counts = np.unique(values, return_counts=True)
    ties = float((tie_counts * (tie_counts - 1) * (2 * tie_counts + 5)).sum())
    variance = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if variance <= 0 or s == 0:
        return 1.0
    z = (s - math.copysign(1.0, s)) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2.0))


def projected_crossing(
    slope: float, intercept: float, last_time: float, limit: float
) -> float | None:
    """When the fitted line reaches ``limit``, read as a ceiling when rising, a floor when falling.

    Returns ``last_time`` when the line is already past the limit, None for a flat line.
    """
    if slope == 0:
        return None
    gap = limit - (intercept + slope * last_time)
    if gap * slope <= 0:
        return last_time
    return last_time + gap / slope


def detect_trend(
    series: Sequence[tuple[float, float]],
    limit: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    max_points: int = DEFAULT_MAX_POINTS,
) -> Trend:
    """Theil-Sen slope, Mann-Kendall significance and projected time to reach ``limit``.

    ``series`` holds (epoch seconds, value) pairs in any order.  The projection is
    only made for a significant trend that moves towards the limit.
    """
    ordered = sorted(series)
    if len(ordered) < MIN_POINTS:
        return Trend(0.0, ordered[-1][1] if ordered else 0.0, 1.0, False, None)
    step = max(1, math.ceil(len(ordered) / max_points))
    points = np.asarray(ordered[::step], dtype=np.float64)
    times, values = points[:, 0], points[:, 1]
    slope, intercept = theil_sen(times, values)
    p_value = mann_kendall_p_value(values)
    significant = p_value < alpha and slope != 0
    exhaustion = None
    if significant and limit is not None:
        exhaustion = projected_crossing(slope, intercept, float(times[-1]), limit)
    return Trend(slope, intercept, p_value, significant, exhaustion)
