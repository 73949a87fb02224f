"""Leak detection: Theil-Sen slope, Mann-Kendall significance and time to exhaustion."""

from __future__ import annotations

import numpy as np
import pytest

from states.detect import trends

HOUR = 3600.0


def leak(points: int = 200, slope: float = 0.01, noise: float = 5.0) -> list[tuple[float, float]]:
    """Memory growing by ``slope`` MB per second, sampled every minute, with noise."""
    rng = np.random.default_rng(7)
    times = np.arange(points) * 60.0
    values = 500.0 + slope * times + rng.normal(0.0, noise, points)
    return list(zip(times.tolist(), values.tolist(), strict=True))


def test_clean_leak_is_significant_with_the_right_slope() -> None:
    trend = trends.detect_trend(leak())
    assert trend.significant
    assert trend.p_value < 1e-6
    assert trend.slope_per_second == pytest.approx(0.01, rel=0.05)


def test_noise_without_trend_is_not_significant() -> None:
    rng = np.random.default_rng(11)
    series = [(i * 60.0, float(v)) for i, v in enumerate(rng.normal(500.0, 5.0, 200))]
    trend = trends.detect_trend(series)
    assert not trend.significant
    assert trend.p_value > 0.05


def test_flat_series_is_not_significant() -> None:
    trend = trends.detect_trend([(i * 60.0, 42.0) for i in range(100)])
    assert not trend.significant
    assert trend.p_value == 1.0
    assert trend.slope_per_second == 0.0


def test_a_single_spike_does_not_move_the_slope() -> None:
    series = [(i * 60.0, 100.0 + 0.5 * i) for i in range(100)]
    series[50] = (50 * 60.0, 10_000.0)
    assert trends.detect_trend(series).slope_per_second == pytest.approx(0.5 / 60.0)


def test_exhaustion_is_projected_where_the_line_meets_the_limit() -> None:
    series = [(i * 60.0, 100.0 + 0.5 * i) for i in range(100)]
    trend = trends.detect_trend(series, limit=200.0)
    # 100 + 0.5 per minute reaches 200 after 200 minutes.
    assert trend.projected_exhaustion_at == pytest.approx(200 * 60.0)


def test_no_exhaustion_is_projected_without_a_significant_trend() -> None:
    rng = np.random.default_rng(3)
    series = [(i * 60.0, float(v)) for i, v in enumerate(rng.normal(500.0, 5.0, 200))]
    assert trends.detect_trend(series, limit=600.0).projected_exhaustion_at is None


def test_a_falling_series_is_projected_to_reach_a_floor_limit() -> None:
    series = [(i * 60.0, 100.0 - 0.5 * i) for i in range(100)]
    # Free space 100 falling 0.5 per minute reaches a floor of 20 after 160 minutes.
    assert trends.detect_trend(series, limit=20.0).projected_exhaustion_at == pytest.approx(
        160 * 60.0
    )


def test_a_series_already_past_its_limit_is_exhausted_now() -> None:
    series = [(i * 60.0, 100.0 + 0.5 * i) for i in range(100)]
    assert trends.detect_trend(series, limit=120.0).projected_exhaustion_at == 99 * 60.0


def test_long_series_are_thinned_but_keep_their_slope() -> None:
    trend = trends.detect_trend(leak(points=3000), max_points=300)
    assert trend.significant
    assert trend.slope_per_second == pytest.approx(0.01, rel=0.05)


def test_too_short_series_is_never_significant() -> None:
    assert not trends.detect_trend([(0.0, 1.0), (HOUR, 2.0), (2 * HOUR, 3.0)]).significant
