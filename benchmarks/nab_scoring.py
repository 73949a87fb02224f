"""NAB's scoring rules, reimplemented so selfheal's detector is measured exactly as published.

The Numenta Anomaly Benchmark does not count hits: it rewards the earliest
detection inside each labelled window through a scaled sigmoid of its position,
charges every detection outside a window according to how far past the previous
window it falls, charges A_FN for each window without a detection, and ignores
the probationary rows at the start of each file.  One threshold per profile is
chosen over the whole corpus, and the raw total is normalised between the null
detector (0) and a perfect one (100).  Mirrors ``nab/sweeper.py`` and
``nab/runner.py`` (NAB v1.1); pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

PROBATION_FRACTION = 0.15
PROBATION_CAP_ROWS = 5000
# Start of the sweep: above every score in [0, 1], so nothing is detected.
NO_DETECTION_THRESHOLD = 1.1


@dataclass(frozen=True)
class CostProfile:
    """The weights of one NAB application profile."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: tuple[CostProfile, ...] = (
    CostProfile("standard", 1.0, 0.11, 1.0),
    CostProfile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    CostProfile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


@dataclass(frozen=True)
class LabelledSeries:
    """One data file's anomaly scores and its windows as inclusive row ranges."""

    name: str
    scores: Sequence[float]
    windows: Sequence[tuple[int, int]]


@dataclass(frozen=True)
class SweepPoint:
    """A scorable row: its anomaly score, what detecting it is worth, and its window."""

    anomaly_score: float
    sweep_score: float
    window: str | None


@dataclass(frozen=True)
class ThresholdScore:
    """The raw score of a corpus (or file) when detections are ``score >= threshold``."""

    threshold: float
    score: float


@dataclass(frozen=True)
class ProfileResult:
    """The outcome of one profile: chosen threshold, raw scores and the normalised score."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalized: float


def probation_length(rows: int) -> int:
    """Rows at the start of a file that NAB never scores: 15% of the file, at most 750."""
    return int(min(math.floor(PROBATION_FRACTION * rows), PROBATION_FRACTION * PROBATION_CAP_ROWS))


def scaled_sigmoid(relative_position: float) -> float:
    """NAB's weight for a relative position: ~1 at a window's left edge, 0 at its right edge."""
    if relative_position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * relative_position)) - 1.0


def window_rows(
    timestamps: Sequence[datetime], windows: Iterable[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    """Turn (start, end) timestamps into inclusive row ranges of a file sorted by time."""
    rows: list[tuple[int, int]] = []
    for start, end in windows:
        first = next(i for i, t in enumerate(timestamps) if t >= start)
        last = max(i for i, t in enumerate(timestamps) if t <= end)
        rows.append((first, last))
    return rows


def sweep_points(series: LabelledSeries, profile: CostProfile) -> list[SweepPoint]:
    """What detecting each scorable row would be worth, as in NAB's ``calcSweepScore``."""
    max_tp = scaled_sigmoid(-1.0)
    probation = probation_length(len(series.scores))
    starts = {first: last for first, last in series.windows}
    points: list[SweepPoint] = []
    current: tuple[int, int] | None = None
    previous: tuple[int, int] | None = None
    for i, anomaly_score in enumerate(series.scores):
        if i in starts:
            current = (i, starts[i])
        if current is not None:
            width = current[1] - current[0] + 1
            position = -(current[1] - i + 1) / width
            sweep = scaled_sigmoid(position) * profile.tp_weight / max_tp
            window: str | None = f"{series.name}|{current[0]}"
        else:
            sweep = _false_positive_weight(i, previous) * profile.fp_weight
            window = None
        if i >= probation:
            points.append(SweepPoint(anomaly_score, sweep, window))
        if current is not None and i == current[1]:
            previous, current = current, None
    return points


def _false_positive_weight(row: int, previous: tuple[int, int] | None) -> float:
    """Negative weight of a detection outside windows: mild just after a window, -1 far away."""
    if previous is None:
        return scaled_sigmoid(3.0)
    width = previous[1] - previous[0] + 1
    return scaled_sigmoid(abs(previous[1] - row) / max(width - 1, 1))


def scores_by_threshold(points: Iterable[SweepPoint], profile: CostProfile) -> list[ThresholdScore]:
    """The raw score at every distinct threshold, sweeping from no detection down to all.

    Like NAB's ``calcScoreByThreshold``, but with a running total instead of re-summing.
    """
    ordered = sorted(points, key=lambda p: p.anomaly_score, reverse=True)
    parts: dict[str, float] = {p.window: -profile.fn_weight for p in ordered if p.window}
    total = sum(parts.values())
    results: list[ThresholdScore] = []
    threshold = NO_DETECTION_THRESHOLD
    for point in ordered:
        if point.anomaly_score != threshold:
            results.append(ThresholdScore(threshold, total))
            threshold = point.anomaly_score
        if point.window is None:
            total += point.sweep_score
        elif point.sweep_score > parts[point.window]:
            total += point.sweep_score - parts[point.window]
            parts[point.window] = point.sweep_score
    results.append(ThresholdScore(threshold, total))
    return results


def optimize_threshold(corpus: Sequence[LabelledSeries], profile: CostProfile) -> ThresholdScore:
    """The threshold with the best raw score over the whole corpus (highest one on ties)."""
    points = [p for series in corpus for p in sweep_points(series, profile)]
    candidates = scores_by_threshold(points, profile)
    return max(candidates, key=lambda c: c.score)


def score_at_threshold(
    corpus: Sequence[LabelledSeries], profile: CostProfile, threshold: float
) -> float:
    """Raw corpus score when every row with ``score >= threshold`` is a detection."""
    total = 0.0
    for series in corpus:
        best: dict[str, float] = {}
        for point in sweep_points(series, profile):
            if point.window is not None:
                best.setdefault(point.window, -profile.fn_weight)
            if point.anomaly_score < threshold:
                continue
            if point.window is None:
                total += point.sweep_score
            else:
                best[point.window] = max(best[point.window], point.sweep_score)
        total += sum(best.values())
    return total


def normalized_score(raw: float, null: float, perfect: float) -> float:
    """NAB's normalisation: 0 for the null detector, 100 for a perfect one."""
    return 100.0 * (raw - null) / (perfect - null)


def score_profile(corpus: Sequence[LabelledSeries], profile: CostProfile) -> ProfileResult:
    """Optimise the threshold for one profile and normalise against null and perfect."""
    best = optimize_threshold(corpus, profile)
    null_corpus = [LabelledSeries(s.name, [0.5] * len(s.scores), s.windows) for s in corpus]
    null = optimize_threshold(null_corpus, profile).score
    perfect = profile.tp_weight * sum(len(s.windows) for s in corpus)
    return ProfileResult(
        profile.name,
        best.threshold,
        best.score,
        null,
        perfect,
        normalized_score(best.score, null, perfect),
    )


def score_corpus(corpus: Sequence[LabelledSeries]) -> list[ProfileResult]:
    """All three NAB profiles for one detector's scores."""
    return [score_profile(corpus, profile) for profile in PROFILES]
