"""Judging one closed window: SLO breaches and deviation from the learned baseline.

Pure functions over numbers. Both judgements of the same metric share a
fingerprint, so an SLO breach and a baseline deviation of the same latency
are one anomaly, never two incidents.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# The single severity table: how far past its threshold a value is.
SEVERITY_TABLE: tuple[tuple[float, str], ...] = ((3.0, "critical"), (1.5, "major"), (0.0, "minor"))
SEVERITY_ORDER = {"minor": 0, "major": 1, "critical": 2}


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


@dataclass(frozen=True)
class Finding:
    """One way a window is anomalous."""

    component: str
    metric: str
    category: str
    detector: str
    value: float
    threshold: float
    baseline: float | None

    @property
    def excess(self) -> float:
        """Value over threshold (1.0 is exactly at the threshold)."""
        return self.value / self.threshold if self.threshold > 0 else float("inf")

    @property
    def severity(self) -> str:
        return severity_of(self.excess)

    @property
    def fingerprint(self) -> str:
        return f"{self.component}:{self.metric}"


def severity_of(excess: float) -> str:
    """Severity from the table: the first row whose bound the excess reaches."""
    for bound, name in SEVERITY_TABLE:
        if excess >= bound:
            return name
    return SEVERITY_TABLE[-1][1]


def baseline_of(healthy_p95: Sequence[float]) -> float | None:
    """The baseline P95: median of recent healthy windows (robust to a stray slow window)."""
    return statistics.median(healthy_p95) if healthy_p95 else None


def judge(
    window: WindowStats, objectives: Objectives, healthy_p95: Sequence[float]
) -> list[Finding]:
    """Every finding for one window, at most one per metric (the most severe)."""
    findings: list[Finding] = []
    base = baseline_of(healthy_p95) if len(healthy_p95) >= objectives.min_baseline else None
    if window.p95_ms is not None:
        latency: list[Finding] = []
        if objectives.slo_p95_ms is not None and window.p95_ms > objectives.slo_p95_ms:
            latency.append(
                _finding(
                    window, "p95_ms", "latency", "slo", window.p95_ms, objectives.slo_p95_ms, base
                )
            )
        if base is not None and base > 0 and window.p95_ms > base * objectives.deviation_factor:
            threshold = base * objectives.deviation_factor
            latency.append(
                _finding(window, "p95_ms", "latency", "baseline", window.p95_ms, threshold, base)
            )
        if latency:
            findings.append(max(latency, key=lambda f: f.excess))
    if objectives.slo_error_rate is not None and window.error_rate > objectives.slo_error_rate:
        findings.append(
            _finding(
                window,
                "error_rate",
                "errors",
                "slo",
                window.error_rate,
                objectives.slo_error_rate,
                None,
            )
        )
    return findings


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
