"""Judging one closed window: SLO breaches and deviation from the learned baseline.

Pure functions over numbers. Both judgements of the same metric share a
fingerprint, so an SLO breach and a baseline deviation of the same latency
are one anomaly, never two incidents. Every detector's severity comes from
the one table below.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from states.detect.burn_rate import BurnRateReport


class SeverityRow(NamedTuple):
    """A severity and what reaches it: a value this many times its threshold, or a
    resource projected to run out within this many seconds."""

    name: str
    excess: float
    exhausted_within_s: float


# The single severity table, worst first; the first row either measure reaches wins.
SEVERITY_TABLE: tuple[SeverityRow, ...] = (
    SeverityRow("critical", 3.0, 3600.0),
    SeverityRow("major", 1.5, 6 * 3600.0),
    SeverityRow("minor", 0.0, math.inf),
)
# How bad each severity is, read off the table: a higher rank is worse.
SEVERITY_ORDER = {row.name: rank for rank, row in enumerate(reversed(SEVERITY_TABLE))}


@dataclass(frozen=True)
class WindowStats:
    """The measured values of one closed window."""

    component: str
    count: int
    error_rate: float
    p95_ms: float | None


@dataclass(frozen=True)
class Objectives:
    """What the component promises and how sensitive the baseline check is."""

    slo_p95_ms: float | None
    slo_error_rate: float | None
    deviation_factor: float
    min_baseline: int
    score_threshold: float = 1.0
    min_relative_change: float = 0.5


@dataclass(frozen=True)
class Finding:
    """One way a window is anomalous.

    ``exhausted_in_s`` is how soon a resource is projected to run out (trend
    findings); ``onset`` when the detector saw it begin, if before the window;
    ``evidence`` the detector's own numbers for the anomaly's record.
    """

    component: str
    metric: str
    category: str
    detector: str
    value: float
    threshold: float
    baseline: float | None
    score: float = 0.0
    exhausted_in_s: float | None = None
    onset: datetime | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def excess(self) -> float:
        """Value over threshold (1.0 is exactly at the threshold)."""
        return self.value / self.threshold if self.threshold > 0 else float("inf")

    @property
    def severity(self) -> str:
        return severity_of(self.excess, self.exhausted_in_s)

    @property
    def fingerprint(self) -> str:
        return f"{self.component}:{self.metric}"


def severity_of(excess: float, exhausted_in_s: float | None = None) -> str:
    """Severity from the table: the first row whose excess, or whose time to exhaustion, is met."""
    for row in SEVERITY_TABLE:
        if excess >= row.excess:
            return row.name
        if exhausted_in_s is not None and exhausted_in_s <= row.exhausted_within_s:
            return row.name
    return SEVERITY_TABLE[-1].name


def baseline_of(healthy_p95: Sequence[float]) -> float | None:
    """The baseline P95: median of recent healthy windows (robust to a stray slow window)."""
    return statistics.median(healthy_p95) if healthy_p95 else None


def judge(
    window: WindowStats,
    objectives: Objectives,
    healthy_p95: Sequence[float],
    score: float | None = None,
) -> list[Finding]:
    """Every finding for one window, at most one per metric (the most severe).

    ``score`` is the streaming detector's score for the window's P95; on its
    own it flags the window only when P95 also moved at least
    ``min_relative_change`` above the baseline, so a confident score on a
    sub-millisecond wobble never opens an incident.
    """
    findings: list[Finding] = []
    base = baseline_of(healthy_p95) if len(healthy_p95) >= objectives.min_baseline else None
    if window.p95_ms is not None:
        latency = _latency_findings(window, window.p95_ms, objectives, base, score)
        if latency:
            findings.append(max(latency, key=lambda f: f.excess))
    if objectives.slo_error_rate is not None and window.error_rate > objectives.slo_error_rate:
        objective = objectives.slo_error_rate
        findings.append(
            _finding(window, "error_rate", "errors", "slo", window.error_rate, objective, None)
        )
    return [replace(f, score=score or 0.0) for f in findings]


def _latency_findings(
    window: WindowStats, p95: float, objectives: Objectives, base: float | None, score: float | None
) -> list[Finding]:
    found: list[Finding] = []
    if objectives.slo_p95_ms is not None and p95 > objectives.slo_p95_ms:
        found.append(_finding(window, "p95_ms", "latency", "slo", p95, objectives.slo_p95_ms, base))
    if base is not None and base > 0:
        if p95 > base * objectives.deviation_factor:
            threshold = base * objectives.deviation_factor
            found.append(_finding(window, "p95_ms", "latency", "baseline", p95, threshold, base))
        moved = base * (1.0 + objectives.min_relative_change)
        if score is not None and score >= objectives.score_threshold and p95 >= moved:
            found.append(_finding(window, "p95_ms", "latency", "metric_score", p95, moved, base))
    return found


def burn_finding(component: str, report: BurnRateReport) -> Finding | None:
    """A finding for the fastest-burning alerting pair, if any pair alerts."""
    alerting = [v for v in report.verdicts if v.alerting]
    if not alerting:
        return None
    worst = max(alerting, key=lambda v: min(v.long_burn_rate, v.short_burn_rate) / v.pair.factor)
    rate = min(worst.long_burn_rate, worst.short_burn_rate)
    detector = f"burn_rate_{worst.pair.name}"
    return Finding(
        component, "error_budget_burn", "errors", detector, rate, worst.pair.factor, None
    )


def _finding(
    window: WindowStats,
    metric: str,
    category: str,
    detector: str,
    value: float,
    threshold: float,
    base: float | None,
) -> Finding:
    return Finding(window.component, metric, category, detector, value, threshold, base)
