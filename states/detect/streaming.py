"""The default streaming detector for any windowed metric series.

Each point is seen once, in order, with no look-ahead, and costs O(1) time and
a fixed amount of memory, so one agent can follow thousands of series at a
10-second poll.  The detector predicts each point from two baselines (a
short-term level, and a slow level plus a learned time-of-day shape), takes the
surprise of the better one (or of a value outside the range seen lately, if
larger), compares it with the long-run distribution of its own surprises (so
noisy series do not alarm more than quiet ones), and reports one high score
per incident instead of a run of them,
because a person is paged once per incident.  Half of the score is contextual
novelty (``contextual.ContextNovelty``): whether the last few coarse values
ever came in this order before, which catches broken patterns that stay
inside the usual range.  The state is a JSON dict so the
agent can persist it across restarts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from states.detect import baselines, contextual

# Scores near 1 differ only in their distance from 1; keep them distinct in floats.
_SURPRISE_CAP = 12.0


@dataclass(frozen=True)
class DetectorSettings:
    """Tuning of ``MetricDetector``; one configuration serves every series.

    Half-lives count points.  The defaults were chosen by measuring the whole
    NAB corpus with one configuration for all files (``benchmarks/nab.py``).
    """

    level_half_life: float = 8.0
    spread_half_life: float = 2000.0
    slow_level_half_life: float = 300.0
    seasonal_half_life: float = 3.0
    season_seconds: float = 86400.0
    season_slots: int = 48
    choose_best: bool = True
    best_ratio: float = 0.7
    seasonal_min_seen: int = 2
    average_window: int = 1
    history_half_life: float = 3000.0
    warmup_points: int = 30
    refractory_points: int = 150
    repeat_damping: float = 0.5
    z_cap: float = 20.0
    novelty_gain: float = 100.0
    range_half_life: float = 1500.0
    context_weight: float = 0.5
    context_bins: int = 8
    context_order: int = 3
    context_rest_points: int = 100
    context_alarm: float = 0.75
    context_capacity: int = 5000


@dataclass
class _History:
    """Long-run mean and variance of the averaged surprise."""

    half_life: float
    mean: float = 0.0
    variance: float = 0.0
    count: int = 0

    def tail(self, value: float) -> float:
        """Probability of an average at least this large under the learned distribution."""
        sd = math.sqrt(self.variance) + 1e-3
        return baselines.normal_tail((value - self.mean) / sd)

    def learn(self, value: float) -> None:
        """Blend ``value`` into the mean and variance."""
        rate = max(baselines.smoothing_factor(self.half_life), 1.0 / (self.count + 1))
        delta = value - self.mean
        self.mean += rate * delta
        self.variance = (1.0 - rate) * (self.variance + rate * delta * delta)
        self.count += 1


@dataclass
class MetricDetector:
    """Streaming anomaly score in [0, 1] for one metric series."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    fast: baselines.EwLevel = field(init=False)
    slow: baselines.EwLevel = field(init=False)
    seasonal_spread: baselines.EwLevel = field(init=False)
    season: baselines.SeasonalProfile = field(init=False)
    history: _History = field(init=False)
    context: contextual.ContextNovelty = field(init=False)
    recent: list[float] = field(default_factory=list)
    high: float = 0.0
    low: float = 0.0
    points: int = 0
    peaks: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.fast = baselines.EwLevel(s.level_half_life, s.spread_half_life)
        self.slow = baselines.EwLevel(s.slow_level_half_life, s.spread_half_life)
        self.seasonal_spread = baselines.EwLevel(s.spread_half_life, s.spread_half_life)
        self.season = baselines.SeasonalProfile(s.seasonal_half_life, s.season_slots)
        self.history = _History(s.history_half_life)
        self.context = contextual.ContextNovelty(
            bins=s.context_bins,
            order=s.context_order,
            rest_points=s.context_rest_points,
            alarm=s.context_alarm,
            capacity=s.context_capacity,
            quiet_points=s.warmup_points,
        )

    def update(self, timestamp: datetime | float, value: float) -> float:
        """Score ``value`` observed at ``timestamp`` (datetime or epoch seconds), then learn it."""
        epoch = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        settings = self.settings
        slot = baselines.season_slot(epoch, settings.season_seconds, settings.season_slots)
        z = self._surprise(slot, value)
        if settings.novelty_gain:
            z = max(z, min(settings.novelty_gain * self._novelty(value), settings.z_cap))
        self._learn(slot, value)
        average = self._average(z)
        tail = self.history.tail(average) if self.history.count else 0.5
        self.history.learn(average)
        score = _score_from_tail(tail)
        novelty = self.context.update(value)
        self.points += 1
        if self.points <= settings.warmup_points:
            return 0.0
        weight = settings.context_weight
        return (1.0 - weight) * self._report(score) + weight * novelty

    def _surprise(self, slot: int, value: float) -> float:
        """Standardised error of the better of the two predictions of ``value``."""
        if not self.fast.count:
            return 0.0
        z = _z(self.fast.residual(value), self.fast.sigma(), self.fast.level)
        if self.season.seen[slot] >= self.settings.seasonal_min_seen:
            predicted = self.slow.level + self.season.offset(slot)
            seasonal_z = _z(value - predicted, self.seasonal_spread.sigma(), predicted)
            if not self.settings.choose_best:
                z = min(z, seasonal_z)
            elif self.seasonal_spread.spread < self.settings.best_ratio * self.fast.spread:
                z = seasonal_z
        return min(z, self.settings.z_cap)

    def _novelty(self, value: float) -> float:
        """How far ``value`` lies outside the range seen so far, in widths of that range.

        The range relaxes slowly towards the level, so a value seen once long ago
        becomes new again.
        """
        if self.points < 2:
            novelty = 0.0
        else:
            width = max(self.high - self.low, 1e-9 + 1e-4 * abs(self.slow.level))
            novelty = max(value - self.high, self.low - value, 0.0) / width
        keep = 1.0 - baselines.smoothing_factor(self.settings.range_half_life)
        level = self.slow.level if self.points else value
        self.high = max(value, level + (self.high - level) * keep) if self.points else value
        self.low = min(value, level + (self.low - level) * keep) if self.points else value
        return novelty

    def _learn(self, slot: int, value: float) -> None:
        """Update both baselines with ``value``."""
        if self.season.seen[slot]:
            predicted = self.slow.level + self.season.offset(slot)
            self.seasonal_spread.learn(value - predicted)
            self.seasonal_spread.level = 0.0
        self.fast.learn(value)
        self.slow.learn(value)
        self.season.learn(slot, value - self.slow.level)

    def _average(self, z: float) -> float:
        """Mean surprise over the last few points (a bounded ring of floats)."""
        self.recent.append(z)
        if len(self.recent) > self.settings.average_window:
            del self.recent[0]
        return sum(self.recent) / len(self.recent)

    def _report(self, score: float) -> float:
        """Pass a score only if it beats every score of the refractory period, else damp it.

        For any threshold this keeps the first crossing of an incident and drops the
        repeats, without the detector having to know the threshold.
        """
        horizon = self.points - self.settings.refractory_points
        while self.peaks and self.peaks[0][0] <= horizon:
            del self.peaks[0]
        beaten = not self.peaks or score > self.peaks[0][1]
        while self.peaks and self.peaks[-1][1] <= score:
            del self.peaks[-1]
        self.peaks.append((self.points, score))
        return score if beaten else score * self.settings.repeat_damping

    def to_state(self) -> dict[str, Any]:
        """The whole detector as a JSON-serialisable dict."""
        return {
            "settings": asdict(self.settings),
            "fast": self.fast.to_state(),
            "slow": self.slow.to_state(),
            "seasonal_spread": self.seasonal_spread.to_state(),
            "season": self.season.to_state(),
            "history": asdict(self.history),
            "context": self.context.to_state(),
            "recent": list(self.recent),
            "high": self.high,
            "low": self.low,
            "points": self.points,
            "peaks": [list(p) for p in self.peaks],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MetricDetector:
        """Rebuild a detector from ``to_state`` output; it scores exactly as the original would."""
        detector = cls(DetectorSettings(**state["settings"]))
        detector.fast = baselines.EwLevel.from_state(state["fast"])
        detector.slow = baselines.EwLevel.from_state(state["slow"])
        detector.seasonal_spread = baselines.EwLevel.from_state(state["seasonal_spread"])
        detector.season = baselines.SeasonalProfile.from_state(state["season"])
        detector.history = _History(**state["history"])
        detector.context = contextual.ContextNovelty.from_state(state["context"])
        detector.recent = list(state["recent"])
        detector.high = float(state["high"])
        detector.low = float(state["low"])
        detector.points = int(state["points"])
        detector.peaks = [(int(i), float(v)) for i, v in state["peaks"]]
        return detector


def _z(residual: float, sigma: float, level: float) -> float:
    """|residual| in standard deviations, with a floor so flat series do not divide by zero."""
    floor = 1e-9 + 1e-4 * abs(level)
    return abs(residual) / max(sigma, floor)


def _score_from_tail(tail: float) -> float:
    """Map a tail probability to [0, 1] on a log scale, so 1e-3 and 1e-9 stay apart."""
    surprise = -math.log10(max(tail, 10.0**-_SURPRISE_CAP))
    return min(surprise / _SURPRISE_CAP, 1.0)
