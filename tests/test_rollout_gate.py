"""Splitting targets into waves, and judging a wave's health gate."""

from __future__ import annotations

import pytest

from states.deploy.rollout import GateLimits, GroupHealth, judge_gate, plan_waves

DEFAULT_WAVES = [25.0, 50.0, 100.0]
LIMITS = GateLimits(
    slo_p95_ms=300.0,
    slo_error_rate=0.05,
    baseline_p95_ms=100.0,
    tolerance=1.25,
    baseline_factor=2.0,
    min_samples=20,
)


def names(count: int) -> list[str]:
    return [f"t{i}" for i in range(count)]


# --- plan_waves ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, [["t0"]]),
        (2, [["t0"], ["t1"]]),
        (3, [["t0"], ["t1"], ["t2"]]),
        (4, [["t0"], ["t1"], ["t2", "t3"]]),
        (10, [["t0", "t1", "t2"], ["t3", "t4"], ["t5", "t6", "t7", "t8", "t9"]]),
    ],
)
def test_default_waves_for_small_and_larger_fleets(count: int, expected: list[list[str]]) -> None:
    assert plan_waves(names(count), DEFAULT_WAVES) == expected


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 10, 33, 100])
@pytest.mark.parametrize("percentages", [DEFAULT_WAVES, [100.0], [1.0, 2.0, 100.0], [10.0, 100.0]])
def test_every_target_is_deployed_exactly_once_in_order_and_no_wave_is_empty(
    count: int, percentages: list[float]
) -> None:
    targets = names(count)
    waves = plan_waves(targets, percentages)

    assert all(waves), "an empty wave would bake and gate nothing"
    assert [t for wave in waves for t in wave] == targets
    assert len(waves) <= len(percentages)


def test_the_first_wave_is_never_the_whole_fleet_when_there_is_a_choice() -> None:
    assert plan_waves(names(2), DEFAULT_WAVES)[0] == ["t0"]


def test_no_targets_plan_no_waves() -> None:
    assert plan_waves([], DEFAULT_WAVES) == []


# --- judge_gate -------------------------------------------------------------------------------------


def healthy(requests: int = 200, errors: int = 1, p95: float | None = 90.0) -> GroupHealth:
    return GroupHealth(requests, errors, p95)


def test_too_few_requests_on_updated_targets_means_keep_baking() -> None:
    verdict = judge_gate(GroupHealth(19, 19, 5000.0), healthy(), LIMITS)

    assert verdict.passed is None
    assert verdict.reasons == ["19 requests on updated targets, need 20"]


def test_a_healthy_wave_passes() -> None:
    verdict = judge_gate(healthy(p95=95.0), healthy(p95=90.0), LIMITS)
    assert verdict.passed is True
    assert verdict.reasons == []


def test_an_error_rate_over_its_objective_fails() -> None:
    verdict = judge_gate(healthy(errors=12), None, LIMITS)

    assert verdict.passed is False
    assert verdict.reasons == ["error rate 6.00% over objective 5.00%"]


def test_a_p95_over_its_objective_fails() -> None:
    limits = GateLimits(300.0, None, None, 1.25, 2.0, 20)
    verdict = judge_gate(healthy(p95=301.0), None, limits)

    assert verdict.passed is False
    assert verdict.reasons == ["P95 301.0 ms over objective 300.0 ms"]


def test_latency_worse_than_the_control_by_more_than_the_tolerance_fails() -> None:
    control = healthy(p95=100.0)

    assert judge_gate(healthy(p95=125.0), control, LIMITS).passed is True
    verdict = judge_gate(healthy(p95=126.0), control, LIMITS)
    assert verdict.passed is False
    assert verdict.reasons == ["P95 126.0 ms over not-yet-updated targets' 100.0 ms x1.25"]


def test_errors_worse_than_the_control_by_more_than_the_tolerance_fails() -> None:
    control = healthy(requests=1000, errors=20)  # 2%: allowed 2% x 1.25 + 1% = 3.5%

    assert judge_gate(healthy(requests=1000, errors=35), control, LIMITS).passed is True
    verdict = judge_gate(healthy(requests=1000, errors=36), control, LIMITS)
    assert verdict.passed is False
    assert verdict.reasons == ["error rate 3.60% above not-yet-updated targets' 2.00%"]


def test_without_a_control_the_baseline_is_used_with_the_detection_factor() -> None:
    # Baseline 100 ms x 2.0: 200 ms passes, 201 ms fails, tolerance 1.25 plays no part.
    assert judge_gate(healthy(p95=200.0), None, LIMITS).passed is True
    verdict = judge_gate(healthy(p95=201.0), None, LIMITS)
    assert verdict.passed is False
    assert verdict.reasons == ["P95 201.0 ms over the healthy baseline 100.0 ms x2.0"]


def test_a_control_with_too_few_requests_is_replaced_by_the_baseline() -> None:
    thin_control = GroupHealth(5, 0, 50.0)

    verdict = judge_gate(healthy(p95=150.0), thin_control, LIMITS)

    assert verdict.passed is True, "150 ms is within 2 x the 100 ms baseline"


def test_with_neither_control_nor_baseline_only_the_objectives_apply() -> None:
    limits = GateLimits(None, 0.05, None, 1.25, 2.0, 20)
    assert judge_gate(healthy(p95=10_000.0), None, limits).passed is True


def test_every_broken_limit_is_reported() -> None:
    verdict = judge_gate(healthy(errors=50, p95=400.0), healthy(p95=100.0), LIMITS)

    assert verdict.passed is False
    assert len(verdict.reasons) == 4


def test_a_group_without_requests_has_no_error_rate() -> None:
    assert GroupHealth(0, 0, None).error_rate == 0.0
