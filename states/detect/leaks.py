"""Judging a watched gauge's recent windows: is a resource running out, and since when?

``trends`` says whether a series rises (Theil-Sen slope, Mann-Kendall test)
and when its line reaches a limit; this module decides which points to fit
and when that is an anomaly. A process restart empties a leaking process, so
the fit starts after the last sharp fall: otherwise the rise before a restart
would keep a fixed service's anomaly open, and the fall would hide a leak that
goes on. The anomaly's onset is the knee of the best flat-then-rising fit, the
moment the leak began: diagnosis looks for the change deployed before it, as
it does for a latency regression, rather than for whatever ran when the trend
finally became significant. The projection uses the slope since the knee, the
rate the resource runs out at now.

Pure functions over (epoch seconds, value) pairs; no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from states.detect.judgement import Finding
from states.detect.policies import GaugeWatch
from states.detect.trends import detect_trend

CATEGORY = "memory_leak"
DETECTOR = "trend"
Point = tuple[float, float]
MIN_RISE_POINTS = 8  # a shorter rise alone gives too rough a slope to project with


@dataclass(frozen=True)
class GaugeVerdict:
    """A judged gauge: the finding if it is running out, else None (healthy)."""

    finding: Finding | None


def since_last_reset(points: Sequence[Point], reset_drop: float) -> list[Point]:
    """The points after the last fall by more than ``reset_drop`` of the value before it."""
    start = 0
    for i in range(1, len(points)):
        before, value = points[i - 1][1], points[i][1]
        if before > 0 and value < before * (1.0 - reset_drop):
            start = i
    return list(points[start:])


def rise_onset(points: Sequence[Point]) -> int:
    """Index of the knee of the least-squares fit "flat, then a straight rise" (0: rising throughout).

    For every candidate knee the rise is a regression on ``max(0, t - t_knee)``,
    whose residual sum of squares has a closed form; the smallest one wins.
    """
    times = np.asarray([p[0] for p in points], dtype=np.float64)
    values = np.asarray([p[1] for p in points], dtype=np.float64)
    knees = len(points) - 2
    if knees < 1:
        return 0
    x = np.maximum(0.0, times[None, :] - times[:knees, None])  # one row per candidate knee
    xc = x - x.mean(axis=1, keepdims=True)
    yc = values - values.mean()
    sxx = (xc * xc).sum(axis=1)
    sxy = (xc * yc).sum(axis=1)
    sse = float((yc * yc).sum()) - np.divide(sxy * sxy, sxx, out=np.zeros(knees), where=sxx > 0)
    return int(np.argmin(sse))


def judge_gauge(component: str, watch: GaugeWatch, points: Sequence[Point]) -> GaugeVerdict | None:
    """The verdict on the latest point of ``points`` (in time order), or None if too few to judge.

    A finding needs a significant rise over the whole fit (Mann-Kendall at
    ``watch.alpha``) whose line reaches ``watch.limit`` within
    ``watch.horizon_s`` of the latest point (at once, if already past it).
    The line is the Theil-Sen fit since the rise began when that part alone
    rises significantly (the flat part before it would flatten the slope and
    postpone the projection), else the fit over every point.
    """
    segment = since_last_reset(points[-watch.lookback_windows :], watch.reset_drop)
    if len(segment) < watch.min_windows:
        return None
    whole = detect_trend(segment, limit=watch.limit, alpha=watch.alpha)
    if not whole.significant or whole.slope_per_second <= 0:
        return GaugeVerdict(None)
    knee = rise_onset(segment)
    trend = whole
    if len(segment) - knee >= MIN_RISE_POINTS:
        rising = detect_trend(segment[knee:], limit=watch.limit, alpha=watch.alpha)
        trend = rising if rising.significant and rising.slope_per_second > 0 else whole
    last_time, current = segment[-1]
    exhaustion = trend.projected_exhaustion_at
    if exhaustion is None or exhaustion - last_time > watch.horizon_s:
        return GaugeVerdict(None)
    exhausted_in_s = max(0.0, exhaustion - last_time)
    before = statistics.median(v for _, v in segment[: knee + 1])
    finding = Finding(
        component=component,
        metric=watch.name,
        category=CATEGORY,
        detector=DETECTOR,
        value=current,
        threshold=watch.limit,
        baseline=before,
        score=round(1.0 - whole.p_value, 6),
        exhausted_in_s=exhausted_in_s,
        onset=_at(segment[knee][0]),
        evidence={
            "gauge": watch.name,
            "selector": watch.selector,
            "current": current,
            "limit": watch.limit,
            "before_rise": before,
            "slope_per_hour": trend.slope_per_second * 3600.0,
            "p_value": whole.p_value,
            "projected_at": _at(exhaustion).isoformat(),
            "time_to_limit_s": round(exhausted_in_s, 1),
            "horizon_s": watch.horizon_s,
            "points": len(segment),
            "fitted_since": _at(segment[0][0]).isoformat(),
            "rise_began": _at(segment[knee][0]).isoformat(),
        },
    )
    return GaugeVerdict(finding)


def _at(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)
