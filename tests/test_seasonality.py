"""Season slots on their boundaries, profiles that count visits, and a weekly profile that is
trusted only once it has seen two earlier weeks and explains a series better than the daily one."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from states.detect.baselines import EwMean, SeasonalProfile, season_slot
from states.detect.seasonality import Seasonality

HOUR, DAY, WEEK = 3600.0, 86_400.0, 604_800.0
MONDAY = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
THURSDAY = 0.0  # epoch 0, where a weekly season starts


def test_monday_one_oclock_lands_in_its_own_hourly_slot_of_the_week() -> None:
    monday_one_am = datetime(2024, 1, 1, 1, 0, tzinfo=UTC).timestamp()
    assert season_slot(monday_one_am, WEEK, 168) == 4 * 24 + 1  # four days after Thursday
    assert season_slot(monday_one_am - 0.001, WEEK, 168) == 4 * 24


@pytest.mark.parametrize(
    ("period", "slots"), [(DAY, 24), (DAY, 48), (DAY, 1440), (WEEK, 168), (WEEK, 336)]
)
def test_every_slot_boundary_lands_in_the_slot_it_starts(period: float, slots: int) -> None:
    width = period / slots
    for start in (THURSDAY, THURSDAY + 2_800 * WEEK):
        assert [season_slot(start + k * width, period, slots) for k in range(slots)] == list(
            range(slots)
        )
        assert [season_slot(start + k * width - 0.001, period, slots) for k in range(slots)] == [
            (k - 1) % slots for k in range(slots)
        ]


def test_a_profile_counts_separate_visits_to_a_slot_not_points() -> None:
    profile = SeasonalProfile(half_life=3.0, slots=24, period_seconds=DAY)
    for i in range(2 * 288):  # two days of five-minute points through hourly slots
        profile.learn(profile.pass_at(MONDAY + 300.0 * i), 1.0)
    assert profile.seen == [24] * 24
    assert profile.visits == [2] * 24
    third_day = profile.pass_at(MONDAY + 2 * DAY)
    assert profile.earlier_visits(third_day) == 2
    profile.learn(third_day, 1.0)
    assert profile.earlier_visits(third_day) == 2
    assert profile.earlier_visits(profile.pass_at(MONDAY + 2 * DAY + HOUR)) == 2


def test_a_profile_whose_lists_do_not_fit_its_slots_is_refused() -> None:
    state = SeasonalProfile(half_life=3.0, slots=24, period_seconds=DAY).to_state()
    state["visits"] = state["visits"][:-1]
    with pytest.raises(ValueError, match="24 slots holds lists of \\[23, 24\\]"):
        SeasonalProfile.from_state(state)


def seasons() -> Seasonality:
    return Seasonality(
        daily=SeasonalProfile(3.0, 48, DAY),
        weekly=SeasonalProfile(3.0, 168, WEEK),
        min_visits=2,
        advantage=0.8,
        daily_error=EwMean(1000.0),
        weekly_error=EwMean(1000.0),
    )


def weekday_weekend(epoch: float) -> float:
    """Busy weekdays, quiet weekends, the same shape within each day (no noise)."""
    weekend = datetime.fromtimestamp(epoch, UTC).weekday() >= 5
    swing = math.sin(2 * math.pi * (epoch % DAY) / DAY)
    return 50.0 + 15.0 * swing if weekend else 100.0 + 40.0 * swing


def test_the_weekly_profile_is_trusted_only_after_two_earlier_weeks() -> None:
    tracker = seasons()
    times = [MONDAY + 300.0 * i for i in range(4 * 2016)]
    trusted = [tracker.observe(t, weekday_weekend(t), 80.0).weekly_explains for t in times]
    first = trusted.index(True)
    assert 2 * 2016 <= first < 3 * 2016
    assert all(trusted[first:])
    assert tracker.weekly_error.value < 0.2 * tracker.daily_error.value


def test_a_weekly_deviation_exists_after_one_earlier_week_for_its_record_to_learn() -> None:
    tracker = seasons()
    times = [MONDAY + 300.0 * i for i in range(2 * 2016)]
    deviations = [tracker.observe(t, weekday_weekend(t), 80.0) for t in times]
    assert all(d.weekly is None for d in deviations[:2016])
    assert all(d.weekly is not None and not d.weekly_explains for d in deviations[2016:])
    assert all(d.daily is not None for d in deviations[288:])


def test_seasonality_round_trips_through_json() -> None:
    tracker = seasons()
    for i in range(3000):
        t = MONDAY + 300.0 * i
        tracker.observe(t, weekday_weekend(t), 80.0)
    restored = Seasonality.from_state(json.loads(json.dumps(tracker.to_state())))
    later = [MONDAY + 300.0 * i for i in range(3000, 3600)]
    assert [tracker.observe(t, weekday_weekend(t), 80.0) for t in later] == [
        restored.observe(t, weekday_weekend(t), 80.0) for t in later
    ]
