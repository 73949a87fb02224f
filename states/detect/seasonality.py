"""Seasonality: how far a value is from the daily shape, and from the weekly one once it has earned it.

Most service metrics follow the time of day, and many also the day of the
week (quiet weekends, a Monday peak).  A daily profile learns the first within
a day, but it reads every weekend as a deviation, so a weekday that looks like
a Sunday (a holiday, a lost region) is no more unusual to it than every
Saturday.  A weekly profile tells them apart, but it needs weeks of data, and
on a series with no weekly shape it is only a noisier copy of the daily one
(each of its slots is refreshed once a week instead of once a day): judged
from its first week, it reports noise as news on a plain daily series.

So both are learned, and the weekly deviation is only worth watching when the
weekly profile has earned it: its slot has been seen in at least
``min_visits`` earlier weeks, and over recent points its mean absolute error
is below ``advantage`` times the daily profile's.  A daily series never meets
the second condition; a series with a weekly shape meets both after two or
three weeks.  The weekly deviation itself is reported from the first week in
which its slot has been seen before, so that the record watching it has
learnt its range by the time it may speak; whether it may raise an event is
the separate ``weekly_explains`` flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from states.detect.baselines import EwMean, SeasonalProfile


class SeasonalDeviation(NamedTuple):
    """A value's deviation from each profile (None while the profile cannot judge it yet).

    A tuple rather than a frozen dataclass: one is made per point, and a tuple
    costs about half as much to make.
    """

    daily: float | None
    weekly: float | None
    weekly_explains: bool


@dataclass
class Seasonality:
    """A daily and a weekly profile, and which of the two has been predicting better lately."""

    daily: SeasonalProfile
    weekly: SeasonalProfile
    min_visits: int
    advantage: float
    daily_error: EwMean
    weekly_error: EwMean

    def observe(self, epoch_seconds: float, value: float, centre: float) -> SeasonalDeviation:
        """Deviations of ``value`` from ``centre`` plus each profile's offset, then learn it."""
        deviation = value - centre
        day, week = self.daily.pass_at(epoch_seconds), self.weekly.pass_at(epoch_seconds)
        daily_offset = self.daily.offset(day)
        daily = None if daily_offset is None else deviation - daily_offset
        weeks = self.weekly.earlier_visits(week)
        weekly = deviation - self.weekly.offsets[week % self.weekly.slots] if weeks else None
        if daily is not None and weekly is not None:
            self.daily_error.learn(abs(daily))
            self.weekly_error.learn(abs(weekly))
        self.daily.learn(day, deviation)
        self.weekly.learn(week, deviation)
        explains = weeks >= self.min_visits and self.weekly_explains()
        return SeasonalDeviation(daily, weekly, explains)

    def weekly_explains(self) -> bool:
        """Whether the weekly profile has recently erred clearly less than the daily one."""
        settled = self.weekly_error.count >= self.weekly_error.half_life
        return settled and self.weekly_error.value < self.advantage * self.daily_error.value

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly copy of both profiles and their recent errors."""
        return {
            "daily": self.daily.to_state(),
            "weekly": self.weekly.to_state(),
            "min_visits": self.min_visits,
            "advantage": self.advantage,
            "daily_error": self.daily_error.to_state(),
            "weekly_error": self.weekly_error.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Seasonality:
        """Rebuild what ``to_state`` dumped."""
        return cls(
            daily=SeasonalProfile.from_state(state["daily"]),
            weekly=SeasonalProfile.from_state(state["weekly"]),
            min_visits=int(state["min_visits"]),
            advantage=float(state["advantage"]),
            daily_error=EwMean.from_state(state["daily_error"]),
            weekly_error=EwMean.from_state(state["weekly_error"]),
        )
