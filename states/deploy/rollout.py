"""Pure rollout logic: splitting targets into waves and judging a wave's health gate.

A wave's gate compares the targets just updated with (a) the component's
objectives and (b) the targets not yet updated over the same period, which
see the same traffic and so are the fairest control. With no control left
(the last wave) the learned baseline stands in for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def plan_waves(targets: Sequence[str], percentages: Sequence[float]) -> list[list[str]]:
    """Cumulative percentages of targets per wave; every wave gets at least one new target."""
    waves: list[list[str]] = []
    done = 0
    for pct in percentages:
        upto = max(done + 1, math.ceil(len(targets) * pct / 100.0))
        upto = min(upto, len(targets))
        if upto > done:
            waves.append(list(targets[done:upto]))
            done = upto
    return waves


@dataclass(frozen=True)
class GroupHealth:
    """Requests, errors and the typical (median) window P95 of a group of targets over the bake.

    The median of per-instance window P95s, not the worst one: a single window
    spoiled by a restart must not fail a wave, while a real regression moves
    most windows.
    """

    requests: int
    errors: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class GateLimits:
    """What a wave must stay within."""

    slo_p95_ms: float | None
    slo_error_rate: float | None
    baseline_p95_ms: float | None
    tolerance: float
    baseline_factor: float
    min_samples: int
    min_delta_ms: float = 0.0


@dataclass(frozen=True)
class GateVerdict:
    """``passed`` None means not enough evidence yet: keep baking."""

    passed: bool | None
    reasons: list[str] = field(default_factory=list)


def judge_gate(
    updated: GroupHealth, control: GroupHealth | None, limits: GateLimits
) -> GateVerdict:
    """Pass, fail, or wait for more evidence."""
    if updated.requests < limits.min_samples:
        return GateVerdict(
            None, [f"{updated.requests} requests on updated targets, need {limits.min_samples}"]
        )
    reasons: list[str] = []
    if limits.slo_error_rate is not None and updated.error_rate > limits.slo_error_rate:
        reasons.append(
            f"error rate {updated.error_rate:.2%} over objective {limits.slo_error_rate:.2%}"
        )
    if (
        limits.slo_p95_ms is not None
        and updated.p95_ms is not None
        and updated.p95_ms > limits.slo_p95_ms
    ):
        reasons.append(f"P95 {updated.p95_ms:.1f} ms over objective {limits.slo_p95_ms:.1f} ms")
    reference = _reference(control, limits)
    if reference is not None and updated.p95_ms is not None:
        value, factor, name = reference
        slower = updated.p95_ms > value * factor and updated.p95_ms - value > limits.min_delta_ms
        if slower:
            reasons.append(f"P95 {updated.p95_ms:.1f} ms over {name} {value:.1f} ms x{factor}")
    if control is not None and control.requests >= limits.min_samples:
        allowed = control.error_rate * limits.tolerance + 0.01
        if updated.error_rate > allowed:
            reasons.append(
                f"error rate {updated.error_rate:.2%} above not-yet-updated targets' {control.error_rate:.2%}"
            )
    return GateVerdict(not reasons, reasons)


def _reference(control: GroupHealth | None, limits: GateLimits) -> tuple[float, float, str] | None:
    """The latency to compare with: the control group, else the baseline (as detection would)."""
    if (
        control is not None
        and control.requests >= limits.min_samples
        and control.p95_ms is not None
    ):
        return control.p95_ms, limits.tolerance, "not-yet-updated targets'"
    if limits.baseline_p95_ms is not None:
        return limits.baseline_p95_ms, limits.baseline_factor, "the healthy baseline"
    return None
