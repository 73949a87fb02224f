"""The streaming metric detector: bounded scores, spikes, level shifts, seasonality, state."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np

from states.detect.contextual import ContextNovelty, bin_index
from states.detect.streaming import DetectorSettings, MetricDetector

STEP = 300.0  # five-minute points
DAY_POINTS = int(86_400 / STEP)
START = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def noisy(points: int, level: float = 100.0, noise: float = 2.0, seed: int = 1) -> list[float]:
    """A stationary series with normal noise."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in level + rng.normal(0.0, noise, points)]


def daily(points: int, seed: int = 2) -> list[float]:
    """A series with a strong daily cycle and a little noise."""
    rng = np.random.default_rng(seed)
    phase = np.arange(points) * 2 * math.pi / DAY_POINTS
    return [float(v) for v in 100.0 + 40.0 * np.sin(phase) + rng.normal(0.0, 1.0, points)]


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
    # Half of the score is contextual novelty, which noise alone raises now and then.
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


def novelties(values: list[float], detector: ContextNovelty) -> list[float]:
    """Contextual novelty of each value in turn."""
    return [detector.update(v) for v in values]


def test_a_repeating_pattern_stops_being_novel() -> None:
    pattern = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    scores = novelties(pattern * 20, ContextNovelty(quiet_points=0, rest_points=0))
    assert max(scores[:8]) > 0.5
    assert max(scores[40:]) == 0.0


def test_known_values_in_a_new_order_are_novel() -> None:
    pattern = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    detector = ContextNovelty(quiet_points=0, rest_points=0)
    novelties(pattern * 20, detector)
    assert novelties([2.0, 6.0, 1.0, 5.0], detector)[0] == 1.0


def test_the_detector_rests_after_an_alarm() -> None:
    detector = ContextNovelty(quiet_points=0, rest_points=5)
    novelties([0.0, 1.0, 0.0, 1.0] * 10, detector)
    assert detector.update(10.0) >= detector.alarm
    assert novelties([20.0, 30.0, 40.0, 50.0, 60.0], detector) == [0.0] * 5


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


def test_bins_cover_the_range_and_an_empty_range_is_one_bin() -> None:
    assert [bin_index(v, 0.0, 8.0, 8) for v in (0.0, 0.99, 4.0, 8.0)] == [0, 0, 4, 7]
    assert bin_index(3.0, 3.0, 3.0, 8) == 0


def test_without_context_weight_the_detector_ignores_novelty() -> None:
    values = daily(DAY_POINTS * 3)
    plain = stream(values, MetricDetector(DetectorSettings(context_weight=0.0)))
    mixed = stream(values)
    assert plain != mixed
    assert all(0.0 <= s <= 1.0 for s in plain)
