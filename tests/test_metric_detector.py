"""The streaming metric detector: bounded scores, spikes, level shifts, daily and weekly
seasonality, records, context, state."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from states.detect.contextual import ContextNovelty, NoveltySurge, bin_index
from states.detect.precedent import RangeRecord
from states.detect.settings import DetectSettings
from states.detect.streaming import DetectorSettings, MetricDetector, event_score

STEP = 300.0  # five-minute points
DAY_POINTS = int(86_400 / STEP)
WEEK_POINTS = 7 * DAY_POINTS
START = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # a Monday
THRESHOLD = DetectSettings().score_threshold
WITHOUT_WEEKLY = DetectorSettings(week_advantage=0.0)  # the weekly profile never explains enough


def noisy(points: int, level: float = 100.0, noise: float = 2.0, seed: int = 1) -> list[float]:
    """A stationary series with normal noise."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in level + rng.normal(0.0, noise, points)]


def daily(points: int, seed: int = 2) -> list[float]:
    """A series with a strong daily cycle and a little noise."""
    rng = np.random.default_rng(seed)
    phase = np.arange(points) * 2 * math.pi / DAY_POINTS
    return [float(v) for v in 100.0 + 40.0 * np.sin(phase) + rng.normal(0.0, 1.0, points)]


def weekday_weekend(points: int, seed: int = 0, holiday: int | None = None) -> list[float]:
    """A daily cycle that is lower and flatter on Saturdays, Sundays and day ``holiday``."""
    rng = np.random.default_rng(seed)
    index = np.arange(points)
    day = index // DAY_POINTS
    rest = (day % 7 >= 5) | (day == holiday)
    base, swing = np.where(rest, 50.0, 100.0), np.where(rest, 15.0, 40.0)
    phase = index * 2 * math.pi / DAY_POINTS
    return [float(v) for v in base + swing * np.sin(phase) + rng.normal(0.0, 1.0, points)]


def stream(values: list[float], detector: MetricDetector | None = None) -> list[float]:
    """Scores of ``values`` fed one at a time at five-minute intervals."""
    detector = detector or MetricDetector()
    return [detector.update(START + i * STEP, v) for i, v in enumerate(values)]


def test_scores_stay_between_zero_and_one() -> None:
    values = noisy(2000)
    values[700] = 1e9
    values[1200:1300] = [-5e6] * 100
    scores = stream(values)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_a_spike_scores_high_against_a_quiet_background() -> None:
    values = noisy(2000)
    values[1500] = 160.0
    scores = stream(values)
    assert scores[1500] > 0.5
    assert scores[1500] > 1.5 * max(scores[1000:1500])


def test_a_level_shift_is_flagged_then_adapted_to() -> None:
    values = noisy(3000)
    values[1500:] = [v + 50.0 for v in values[1500:]]
    scores = stream(values)
    assert max(scores[1500:1505]) > 0.5
    assert max(scores[2500:]) < 0.5 * max(scores[1500:1505])


def test_a_daily_seasonal_series_stays_low_after_learning() -> None:
    scores = stream(daily(DAY_POINTS * 10))
    learned = scores[DAY_POINTS * 5 :]
    assert max(learned) < 0.5


def test_a_daily_series_scores_as_if_there_were_no_weekly_profile() -> None:
    values = daily(WEEK_POINTS * 5)
    detector = MetricDetector()
    scores = stream(values, detector)
    assert scores == stream(values, MetricDetector(WITHOUT_WEEKLY))
    assert not detector.seasons.weekly_explains()
    assert detector.seasons.weekly_error.value > detector.seasons.daily_error.value


def test_a_weekday_weekend_series_stays_quiet_at_weekends_after_learning() -> None:
    detector = MetricDetector()
    scores = stream(weekday_weekend(WEEK_POINTS * 6), detector)
    weekends = [s for i, s in enumerate(scores[WEEK_POINTS * 3 :]) if (i // DAY_POINTS) % 7 >= 5]
    assert len(weekends) == 3 * 2 * DAY_POINTS
    assert max(weekends) < THRESHOLD
    assert detector.seasons.weekly_explains()


def test_a_weekday_that_looks_like_a_weekend_is_flagged_only_with_the_weekly_profile() -> None:
    holiday = 30  # the Wednesday of the fifth week
    values = weekday_weekend(WEEK_POINTS * 5, holiday=holiday)
    first_hour = slice(holiday * DAY_POINTS, holiday * DAY_POINTS + 12)
    weekly = stream(values)[first_hour]
    daily_only = stream(values, MetricDetector(WITHOUT_WEEKLY))[first_hour]
    assert max(weekly) > 0.9
    assert max(daily_only) < THRESHOLD


def test_a_break_in_the_daily_cycle_scores_higher_than_the_cycle() -> None:
    values = daily(DAY_POINTS * 10)
    anomaly_at = DAY_POINTS * 8 + DAY_POINTS // 4
    values[anomaly_at : anomaly_at + 12] = [20.0] * 12
    scores = stream(values)
    before = max(scores[DAY_POINTS * 5 : anomaly_at])
    assert max(scores[anomaly_at : anomaly_at + 12]) > 1.5 * before


def test_a_flat_series_stays_low_until_it_moves() -> None:
    values = [5.0] * 500 + [6.0]
    scores = stream(values)
    assert max(scores[:500]) < 0.1
    assert scores[500] > 0.5


def test_state_round_trip_gives_identical_subsequent_scores() -> None:
    values = daily(DAY_POINTS * 4)
    values[900] = 500.0
    original = MetricDetector()
    stream(values[:700], original)
    restored = MetricDetector.from_state(json.loads(json.dumps(original.to_state())))
    later = values[700:]
    times = [START + (700 + i) * STEP for i in range(len(later))]
    assert [original.update(t, v) for t, v in zip(times, later, strict=True)] == [
        restored.update(t, v) for t, v in zip(times, later, strict=True)
    ]


def test_score_of_a_point_does_not_depend_on_later_points() -> None:
    values = noisy(1200)
    changed = values[:800] + [v * 3.0 + 40.0 for v in values[800:]]
    assert stream(values)[:800] == stream(changed)[:800]


def test_datetime_and_epoch_timestamps_score_the_same() -> None:
    values = daily(DAY_POINTS * 2)
    by_datetime = MetricDetector()
    by_epoch = MetricDetector()
    for i, v in enumerate(values):
        t = START + i * STEP
        assert by_datetime.update(datetime.fromtimestamp(t, UTC), v) == by_epoch.update(t, v)


def test_repeats_of_an_incident_are_damped() -> None:
    values = noisy(2000)
    values[1500] = 200.0
    values[1510] = 200.0
    scores = stream(values)
    assert scores[1510] < scores[1500]


def test_a_second_event_soon_after_the_first_scores_lower() -> None:
    values = noisy(2000)
    values[1500] = 160.0
    values[1505] = 220.0
    scores = stream(values)
    assert 0.0 < scores[1505] < scores[1500]


def test_an_event_scores_more_after_a_longer_quiet_spell_or_a_wider_margin() -> None:
    settings = DetectorSettings()
    assert event_score(1000, 1.5, settings) > event_score(10, 1.5, settings)
    assert event_score(100, 50.0, settings) > event_score(100, 1.5, settings)
    assert 0.0 < event_score(1, 1.0, settings) <= event_score(10**9, 10**9, settings) == 1.0


def test_a_record_must_clear_the_old_one_by_the_tolerance() -> None:
    record = RangeRecord(tolerance=0.1, warmup=2)
    assert [record.update(v, 5.0) for v in (0.0, 10.0, 5.0)] == [0.0, 0.0, 0.0]
    assert record.update(10.5, 5.0) == 0.0
    assert record.update(12.05, 5.0) == pytest.approx((12.05 - 10.5) / 1.05)
    assert record.update(-3.0, 5.0) > 1.0


def test_an_upward_only_record_ignores_new_lows() -> None:
    record = RangeRecord(tolerance=0.0, warmup=1, upward_only=True)
    record.update(1.0, 0.0)
    record.update(2.0, 0.0)
    assert record.update(-100.0, 0.0) == 0.0
    assert record.update(5.0, 0.0) > 0.0


def test_the_range_relaxes_so_an_old_spike_stops_hiding_a_smaller_one() -> None:
    values = noisy(3000)
    values[500] = 200.0
    values[2900] = 150.0
    forgetful = stream(values, MetricDetector(DetectorSettings(range_half_life=200.0)))
    lasting = stream(values, MetricDetector(DetectorSettings(range_half_life=1e12)))
    assert forgetful[2900] > 0.5
    assert lasting[2900] < forgetful[2900]


def test_values_in_a_new_order_raise_an_event_without_any_record() -> None:
    up = [float(v) for v in range(8)]
    down = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 7.0]
    values = up * 300 + down * 20
    no_records: dict[str, Any] = {
        f"{view}_tolerance": 1e9 for view in ("value", "mean", "spread", "season")
    }
    scores = stream(values, MetricDetector(DetectorSettings(**no_records)))
    silent = stream(values, MetricDetector(DetectorSettings(**no_records, surge_alarm=1e9)))
    assert max(scores[1200:2400]) == 0.0
    assert max(scores[2400:]) > 0.3
    assert max(silent) == 0.0


def test_detector_state_stays_bounded_and_json() -> None:
    detector = MetricDetector(DetectorSettings(context_capacity=300))
    stream(noisy(6000, seed=5), detector)
    size = len(json.dumps(detector.to_state()))
    stream(noisy(6000, seed=6), detector)
    assert len(json.dumps(detector.to_state())) < 1.2 * size


def novelties(values: list[float], detector: ContextNovelty) -> list[float]:
    """Contextual novelty of each value in turn."""
    return [detector.update(v) for v in values]


def fine_novelty() -> ContextNovelty:
    """One bin per integer 0..7 once the first eight values have set the width."""
    return ContextNovelty(warmup=8, widening=1.0)


def test_a_repeating_pattern_stops_being_novel() -> None:
    pattern = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    scores = novelties(pattern * 20, fine_novelty())
    assert max(scores[:8]) > 0.5
    assert max(scores[40:]) == 0.0


def test_known_values_in_a_new_order_are_novel() -> None:
    pattern = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    detector = fine_novelty()
    novelties(pattern * 20, detector)
    assert novelties([2.0, 6.0, 1.0, 5.0], detector)[0] == 1.0


def test_bins_keep_the_warmup_width_and_values_far_outside_get_new_bins() -> None:
    detector = fine_novelty()
    novelties([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], detector)
    width = detector.width
    novelties([100.0, -50.0, 3.0], detector)
    assert detector.width == width
    assert bin_index(100.0, detector.origin, width) > bin_index(7.0, detector.origin, width)


def test_bins_count_widths_from_the_origin_within_the_symbol_range() -> None:
    assert [bin_index(v, 0.0, 1.0) for v in (0.0, 0.99, 4.0, -0.5)] == [0, 0, 4, -1]
    assert bin_index(1e300, 0.0, 1.0) == bin_index(1e301, 0.0, 1.0)


def test_a_flat_warmup_still_gives_bins_a_width() -> None:
    detector = ContextNovelty(warmup=20)
    novelties([3.0] * 30, detector)
    assert detector.width > 0.0


def test_remembered_contexts_never_exceed_the_capacity() -> None:
    detector = ContextNovelty(capacity=50, bins=16)
    novelties(noisy(3000, seed=3), detector)
    assert len(detector.seen) == 50


def test_contextual_state_round_trip_gives_identical_novelties() -> None:
    values = noisy(1500, seed=4)
    original = ContextNovelty(capacity=200)
    novelties(values[:1000], original)
    restored = ContextNovelty.from_state(json.loads(json.dumps(original.to_state())))
    assert novelties(values[1000:], original) == novelties(values[1000:], restored)


def surges(novelty: list[float], tracker: NoveltySurge) -> list[float]:
    """Surge of each novelty in turn."""
    return [tracker.update(n) for n in novelty]


def test_novelty_above_its_habit_surges_and_constant_novelty_does_not() -> None:
    rng = np.random.default_rng(7)
    habit = [float(v) for v in rng.uniform(0.0, 0.2, 2000)]
    calm = surges([*habit, *[0.1] * 50], NoveltySurge())
    burst = surges([*habit, *[1.0] * 50], NoveltySurge())
    assert max(calm[2000:]) < 1.0
    assert max(burst[2000:]) > 6.0
    assert surges([1.0] * 1000, NoveltySurge())[-1] <= 0.0


def test_surge_is_zero_during_its_warmup_and_round_trips() -> None:
    tracker = NoveltySurge(warmup=100)
    assert surges([1.0, 0.0] * 50, tracker) == [0.0] * 100
    restored = NoveltySurge.from_state(json.loads(json.dumps(tracker.to_state())))
    later = [0.3, 0.9, 0.0, 0.5]
    assert surges(later, tracker) == surges(later, restored)
