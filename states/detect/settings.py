"""The ``[detect]`` and ``[components.<name>]`` sections: when a window is anomalous.

``[detect]`` holds the service-wide dials (persistence, baselines, the
streaming detector's threshold, burn-rate alerts, the error-budget period);
each component adds its objectives, what its detectors watch (gauges, log
templates), its source paths and whom it calls. Whether a component's calls
and gauges name things configured elsewhere is checked by
``states.settings.Settings``, which sees every section.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from states.detect.policies import GaugeWatch, LogDetection


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSettings(_Section):
    """One component of the service: its code, its objectives and what its detectors watch."""

    paths: list[str] = Field(default_factory=list, description="Source paths in the repository.")
    slo_p95_ms: float | None = Field(default=None, gt=0, description="P95 latency objective.")
    slo_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Error-rate objective."
    )
    score_threshold: float | None = Field(
        default=None, gt=0, le=1, description="Overrides detect.score_threshold."
    )
    gauges: list[GaugeWatch] = Field(
        default_factory=list, description="Gauges watched for a rise towards a limit (leaks)."
    )
    logs: LogDetection = Field(
        default_factory=LogDetection, description="New error templates and template spikes."
    )
    calls: list[str] = Field(
        default_factory=list,
        description="Components this one calls (the call graph diagnosis ranks components on).",
    )

    @field_validator("gauges")
    @classmethod
    def _distinct_gauges(cls, gauges: list[GaugeWatch]) -> list[GaugeWatch]:
        names = [g.name for g in gauges]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"gauge names must be distinct; repeated: {', '.join(repeated)}")
        return gauges


class BurnPairSettings(_Section):
    """One multi-window burn-rate alert: both windows must burn faster than ``factor``."""

    name: str
    long_s: float = Field(gt=0)
    short_s: float = Field(gt=0)
    factor: float = Field(gt=0)


def _default_burn_pairs() -> list[BurnPairSettings]:
    return [
        BurnPairSettings(name="fast", long_s=3600.0, short_s=300.0, factor=14.4),
        BurnPairSettings(name="slow", long_s=21600.0, short_s=1800.0, factor=6.0),
    ]


class DetectSettings(_Section):
    """When a window is anomalous and when an anomaly is actionable."""

    persist_windows: int = Field(default=3, ge=1, description="Windows in a row before acting.")
    clear_windows: int = Field(default=2, ge=1, description="Healthy windows in a row to close.")
    reopen_windows: int = Field(
        default=10,
        ge=0,
        description="A closed anomaly outside any cycle re-opens if its fingerprint is "
        "anomalous again within this many windows (its cycle's anomaly: while the cycle runs).",
    )
    baseline_windows: int = Field(
        default=30, ge=3, description="Recent healthy windows in the baseline."
    )
    min_baseline_windows: int = Field(
        default=5, ge=1, description="Baseline needed before judging."
    )
    deviation_factor: float = Field(
        default=2.0, gt=1, description="P95 over baseline median to flag."
    )
    min_samples: int = Field(
        default=10, ge=1, description="Fewer requests in a window: not judged."
    )
    score_threshold: float = Field(
        default=0.375,
        gt=0,
        le=1,
        description=(
            "Streaming detector score that flags a window: the threshold NAB's "
            "reward_low_FP_rate profile chooses for this detector (false alarms cost most "
            "there; the other two profiles choose the same one). A record after about 200 "
            "uneventful windows, or one cleared by a wide margin after fewer, reaches it."
        ),
    )
    min_relative_change: float = Field(
        default=0.5, ge=0, description="A score finding also needs P95 this far above baseline."
    )
    burn_rate_pairs: list[BurnPairSettings] = Field(default_factory=_default_burn_pairs)
    slo_period_s: float = Field(default=30 * 86400.0, gt=0, description="Error-budget period.")
    default_slo_p95_ms: float | None = Field(default=None, gt=0)
    default_slo_error_rate: float | None = Field(default=0.05, ge=0, le=1)

    def budget_reach_s(self) -> float:
        """How far back burn rates and the error budget look (the hourly totals are kept so long)."""
        longest = max((p.long_s for p in self.burn_rate_pairs), default=0.0)
        return max(longest, self.slo_period_s)
