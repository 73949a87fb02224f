"""The streaming metric detector: bounded scores, spikes, level shifts, seasonality, state."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np

from states.detect.streaming import MetricDetector

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
    assert scores[1500] > 2 * max(scores[1000:1500])


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
    assert max(scores[anomaly_at : anomaly_at + 12]) > 2 * max(scores[DAY_POINTS * 5 : anomaly_at])


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
