"""The default streaming detector for any windowed metric series.

Each point is seen once, in order, with no look-ahead, and costs O(1) time and
a bounded amount of memory, so one agent can follow thousands of series at a
10-second poll.  The detector looks for *events*: a record in one of four
views of the series (``precedent``: the value, its short-term mean, its
point-to-point spread, its deviation from the learned daily shape), or a surge
of contextual novelty (``contextual``: values arriving in an order never seen
before).  Between events the score is 0.  An event scores by how long the
series had been uneventful before it and by how far the record was cleared,
on a log scale: a new extreme after weeks of calm pages someone, the third
record in a row during one incident barely registers, because a person is
paged once per incident.  The state is a JSON dict so the agent can persist it
across restarts; it carries ``STATE_VERSION``, and a state of another version
(an older release's) or a damaged one raises ``DetectorStateError`` instead of
a stray KeyError, so the caller can start that series afresh.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from states.detect import baselines, contextual, precedent, seasonality

# The shape of ``MetricDetector.to_state``: raise it whenever that shape changes.
# States written before it existed count as 1 (the predictor-surprise detector's
# and the first records detector's, whose shapes differ; neither can be restored).
STATE_VERSION = 2


class DetectorStateError(ValueError):
    """A saved detector state this release cannot restore: another version, or damaged."""


@dataclass(frozen=True)
class DetectorSettings:
    """Tuning of ``MetricDetector``; one configuration serves every series.

    Half-lives and warm-ups count points.  The defaults were chosen by measuring
    the whole NAB corpus with one configuration for all files
    (``benchmarks/nab.py``).  The ``week_*`` settings shape the weekly profile
    (``seasonality``): it may raise events once a slot has been seen in
    ``week_min_visits`` earlier weeks and its mean absolute error over about
    ``week_error_half_life`` points is below ``week_advantage`` times the daily
    profile's; they were set before measuring and NAB scores move by at most
    0.2 when any one of them is changed (0.7-0.9, 1-3 weeks, 500-2,000 points).
    """

    warmup_points: int = 30
    value_tolerance: float = 0.02
    mean_half_life: float = 10.0
    mean_tolerance: float = 0.05
    spread_half_life: float = 30.0
    spread_tolerance: float = 0.05
    level_half_life: float = 300.0
    season_seconds: float = 86400.0
    season_slots: int = 48
    seasonal_half_life: float = 3.0
    season_tolerance: float = 0.02
    season_warmup: int = 300
    week_seconds: float = 604800.0
    week_slots: int = 168
    week_min_visits: int = 2
    week_advantage: float = 0.8
    week_error_half_life: float = 1000.0
    range_half_life: float = 100_000.0
    context_bins: int = 8
    context_order: int = 3
    context_widening: float = 3.0
    context_warmup: int = 150
    context_capacity: int = 2000
    surge_window: int = 10
    surge_half_life: float = 3000.0
    surge_warmup: int = 300
    surge_alarm: float = 6.0
    excess_weight: float = 2.0
    score_scale: float = 14.0


@dataclass
class MetricDetector:
    """Streaming anomaly score in [0, 1] for one metric series."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    mean: baselines.EwMean = field(init=False)
    spread: baselines.EwMean = field(init=False)
    level: baselines.EwLevel = field(init=False)
    seasons: seasonality.Seasonality = field(init=False)
    records: dict[str, precedent.RangeRecord] = field(init=False)
    context: contextual.ContextNovelty = field(init=False)
    surge: contextual.NoveltySurge = field(init=False)
    previous: float | None = None
    points: int = 0
    last_event: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        self.mean = baselines.EwMean(s.mean_half_life)
        self.spread = baselines.EwMean(s.spread_half_life)
        self.level = baselines.EwLevel(s.level_half_life, s.level_half_life)
        self.seasons = seasonality.Seasonality(
            daily=baselines.SeasonalProfile(s.seasonal_half_life, s.season_slots, s.season_seconds),
            weekly=baselines.SeasonalProfile(s.seasonal_half_life, s.week_slots, s.week_seconds),
            min_visits=s.week_min_visits,
            advantage=s.week_advantage,
            daily_error=baselines.EwMean(s.week_error_half_life),
            weekly_error=baselines.EwMean(s.week_error_half_life),
        )
        keep = 1.0 - baselines.smoothing_factor(s.range_half_life)
        self.records = {
            "value": precedent.RangeRecord(s.value_tolerance, s.warmup_points, keep),
            "mean": precedent.RangeRecord(s.mean_tolerance, s.warmup_points, keep),
            "spread": precedent.RangeRecord(s.spread_tolerance, s.warmup_points, keep, True),
            "season": precedent.RangeRecord(s.season_tolerance, s.season_warmup, keep),
            "week": precedent.RangeRecord(s.season_tolerance, s.season_warmup, keep),
        }
        self.context = contextual.ContextNovelty(
            bins=s.context_bins,
            order=s.context_order,
            widening=s.context_widening,
            warmup=s.context_warmup,
            capacity=s.context_capacity,
        )
        self.surge = contextual.NoveltySurge(
            window=s.surge_window, half_life=s.surge_half_life, warmup=s.surge_warmup
        )

    def update(self, timestamp: datetime | float, value: float) -> float:
        """Score ``value`` observed at ``timestamp`` (datetime or epoch seconds), then learn it."""
        epoch = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        cleared = self._records(epoch, value)
        if self.surge.update(self.context.update(value)) >= self.settings.surge_alarm:
            cleared = max(cleared, 1.0)
        self.points += 1
        if not cleared:
            return 0.0
        quiet = self.points - self.last_event
        self.last_event = self.points
        return event_score(quiet, cleared, self.settings)

    def _records(self, epoch: float, value: float) -> float:
        """Update every view with ``value``; the most tolerances any record cleared (0: none)."""
        step = abs(value - self.previous) if self.previous is not None else 0.0
        self.previous = value
        self.mean.learn(value)
        self.spread.learn(step)
        centre = self.level.level if self.level.count else value
        cleared = max(
            self.records["value"].update(value, centre),
            self.records["mean"].update(self.mean.value, centre),
            self.records["spread"].update(self.spread.value, 0.0),
        )
        cleared = max(cleared, self._seasonal(epoch, value, centre))
        self.level.learn(value)
        return cleared

    def _seasonal(self, epoch: float, value: float, centre: float) -> float:
        """Tolerances cleared by the deviation from the daily shape, or the weekly one once it explains more."""
        deviation = self.seasons.observe(epoch, value, centre)
        cleared = 0.0
        if deviation.daily is not None:
            cleared = self.records["season"].update(deviation.daily, 0.0)
        if deviation.weekly is not None:
            weekly = self.records["week"].update(deviation.weekly, 0.0)
            cleared = max(cleared, weekly if deviation.weekly_explains else 0.0)
        return cleared

    def to_state(self) -> dict[str, Any]:
        """The whole detector as a JSON-serialisable dict."""
        return {
            "version": STATE_VERSION,
            "settings": asdict(self.settings),
            "mean": self.mean.to_state(),
            "spread": self.spread.to_state(),
            "level": self.level.to_state(),
            "seasons": self.seasons.to_state(),
            "records": {name: r.to_state() for name, r in self.records.items()},
            "context": self.context.to_state(),
            "surge": self.surge.to_state(),
            "previous": self.previous,
            "points": self.points,
            "last_event": self.last_event,
        }

    @classmethod
    def from_state(cls, state: Any) -> MetricDetector:
        """Rebuild a detector from ``to_state`` output; it scores exactly as the original would.

        Raises ``DetectorStateError`` saying why when ``state`` is of another
        version or cannot be read.
        """
        check_state_version(state)
        try:
            return cls._restore(state)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DetectorStateError(
                f"unreadable state ({type(error).__name__}: {error})"
            ) from error

    @classmethod
    def _restore(cls, state: dict[str, Any]) -> MetricDetector:
        """Rebuild every part of a state of this version (errors as the parts raise them)."""
        detector = cls(DetectorSettings(**state["settings"]))
        detector.mean = baselines.EwMean.from_state(state["mean"])
        detector.spread = baselines.EwMean.from_state(state["spread"])
        detector.level = baselines.EwLevel.from_state(state["level"])
        detector.seasons = seasonality.Seasonality.from_state(state["seasons"])
        if set(state["records"]) != set(detector.records):
            raise ValueError(
                f"records {sorted(state['records'])}, expected {sorted(detector.records)}"
            )
        detector.records = {
            name: precedent.RangeRecord.from_state(r) for name, r in state["records"].items()
        }
        detector.context = contextual.ContextNovelty.from_state(state["context"])
        detector.surge = contextual.NoveltySurge.from_state(state["surge"])
        previous = state["previous"]
        detector.previous = None if previous is None else float(previous)
        detector.points = int(state["points"])
        detector.last_event = int(state["last_event"])
        return detector


def check_state_version(state: Any) -> None:
    """Raise ``DetectorStateError`` unless ``state`` is a dict of ``STATE_VERSION``."""
    if not isinstance(state, dict):
        raise DetectorStateError(f"unreadable state (a JSON {type(state).__name__}, not an object)")
    version = state.get("version", 1)
    if version == STATE_VERSION:
        return
    written_by = "an older" if isinstance(version, int) and version < STATE_VERSION else "another"
    raise DetectorStateError(
        f"state version {version!r} was written by {written_by} release; "
        f"this release reads version {STATE_VERSION}"
    )


def event_score(quiet_points: int, cleared: float, settings: DetectorSettings) -> float:
    """Score of an event after ``quiet_points`` without one, clearing a record ``cleared`` times.

    Under a steady series a record at point n has probability about 1/n, so the
    log of the quiet spell is the evidence the event carries; a record cleared
    by a wide margin adds the log of that margin.
    """
    evidence = math.log1p(quiet_points) + settings.excess_weight * math.log(max(cleared, 1.0))
    return min(evidence / settings.score_scale, 1.0)
