"""SLO burn-rate alerts: both windows of a pair must burn faster than its factor."""

from __future__ import annotations

import pytest

from states.detect import burn_rate
from states.detect.burn_rate import Bucket, BurnRatePolicy, WindowPair

MINUTE = 60.0


def buckets(minutes: int, error_ratio: float, per_minute: float = 1000.0) -> list[Bucket]:
    """One bucket per minute ending at minute 1..minutes, with a fixed error ratio."""
    bad = per_minute * error_ratio
    return [Bucket((m + 1) * MINUTE, per_minute - bad, per_minute) for m in range(minutes)]


def test_burn_rate_is_error_ratio_over_allowed_ratio() -> None:
    assert burn_rate.burn_rate(good=990, total=1000, objective=0.999) == pytest.approx(10.0)


def test_burn_rate_without_traffic_is_zero() -> None:
    assert burn_rate.burn_rate(good=0, total=0, objective=0.999) == 0.0


def test_a_full_outage_fires_the_fast_pair() -> None:
    report = burn_rate.evaluate(BurnRatePolicy(0.999), buckets(60, 0.02), now=60 * MINUTE)
    fast = report.verdicts[0]
    assert fast.pair.name == "fast"
    assert fast.alerting
    assert fast.long_burn_rate == pytest.approx(20.0)
    assert report.alerting


def test_healthy_traffic_fires_nothing() -> None:
    report = burn_rate.evaluate(BurnRatePolicy(0.999), buckets(400, 0.0005), now=400 * MINUTE)
    assert not report.alerting
    assert all(v.long_burn_rate == pytest.approx(0.5) for v in report.verdicts)


def test_a_recovered_incident_stops_alerting_once_the_short_window_is_clean() -> None:
    history = buckets(50, 0.05) + [Bucket((50 + m + 1) * MINUTE, 1000.0, 1000.0) for m in range(10)]
    report = burn_rate.evaluate(BurnRatePolicy(0.999), history, now=60 * MINUTE)
    fast = report.verdicts[0]
    assert fast.long_burn_rate > fast.pair.factor
    assert fast.short_burn_rate == 0.0
    assert not fast.alerting


def test_a_short_blip_alone_does_not_alert() -> None:
    history = buckets(55, 0.0) + [Bucket((55 + m + 1) * MINUTE, 950.0, 1000.0) for m in range(5)]
    report = burn_rate.evaluate(BurnRatePolicy(0.999), history, now=60 * MINUTE)
    fast = report.verdicts[0]
    assert fast.short_burn_rate == pytest.approx(50.0)
    assert fast.long_burn_rate < fast.pair.factor
    assert not fast.alerting


def test_steady_bleeding_fires_only_the_slow_pair() -> None:
    report = burn_rate.evaluate(BurnRatePolicy(0.999), buckets(360, 0.008), now=360 * MINUTE)
    fast, slow = report.verdicts
    assert not fast.alerting
    assert slow.alerting


def test_windows_are_configurable_in_seconds() -> None:
    policy = BurnRatePolicy(
        0.99, period_seconds=600.0, pairs=(WindowPair("demo", 60.0, 10.0, 2.0),)
    )
    history = [Bucket(float(s), 90.0, 100.0) for s in range(1, 61)]
    (verdict,) = burn_rate.evaluate(policy, history, now=60.0).verdicts
    assert verdict.long_burn_rate == pytest.approx(10.0)
    assert verdict.alerting


def test_budget_remaining_counts_what_the_period_has_spent() -> None:
    policy = BurnRatePolicy(0.99, period_seconds=100 * MINUTE)
    report = burn_rate.evaluate(policy, buckets(100, 0.0025), now=100 * MINUTE)
    assert report.budget_remaining == pytest.approx(0.75)


def test_overspent_budget_is_negative() -> None:
    assert burn_rate.budget_remaining(good=980, total=1000, objective=0.99) == pytest.approx(-1.0)


def test_objective_outside_zero_and_one_is_rejected_with_the_value() -> None:
    with pytest.raises(ValueError, match=r"got 1\.5"):
        BurnRatePolicy(1.5)
