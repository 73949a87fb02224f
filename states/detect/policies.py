"""What a component asks of the leak and log detectors: the ``gauges`` and ``logs`` of its table.

These are configuration models, validated when the file is loaded, so that a
bad threshold is named with its key before the daemon starts. The defaults
are chosen to stay quiet on healthy traffic: a leak must be significant and
reach its limit within a day, a new error text must recur before it is
actionable (``detect.persist_windows``), and a spike must be a rare event
for its own template's history, several times its usual count and at least
a handful of messages.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from states.telemetry.prometheus_text import parse_selector


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GaugeWatch(_Policy):
    """A gauge whose steady rise means a resource runs out (memory, disk, descriptors).

    Prometheus scrape sources record its last value in each window (the largest
    series when the selector matches several for one component), and so do
    query sources that read a gauge of the same ``name`` (``[[telemetry.metrics.gauges]]``,
    then ``selector`` is left out); the leak detector fits a trend over the
    recent windows and opens a ``memory_leak`` anomaly when the rise is
    significant and the limit is projected within ``horizon_s``.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="The metric name in anomalies.")
    selector: str | None = Field(
        default=None,
        description="A series selector scrape sources read, e.g. process_resident_memory_bytes; "
        "none for a gauge only a query source reads.",
    )
    limit: float = Field(gt=0, description="Where the resource runs out, in the gauge's unit.")
    horizon_s: float = Field(
        default=86400.0, gt=0, description="Alarm when the limit is projected within this."
    )
    lookback_windows: int = Field(
        default=120, ge=4, le=5000, description="Windows the trend is fitted over."
    )
    min_windows: int = Field(default=20, ge=4, description="Fewer points: not judged.")
    alpha: float = Field(
        default=0.01, gt=0, lt=1, description="Mann-Kendall significance level of the rise."
    )
    reset_drop: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="A fall by this share between windows is a restart: the fit starts after it.",
    )

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            parse_selector(value)
        return value

    @model_validator(mode="after")
    def _enough_lookback(self) -> GaugeWatch:
        if self.min_windows > self.lookback_windows:
            raise ValueError("min_windows must not exceed lookback_windows")
        return self


class LogDetection(_Policy):
    """New error templates and spikes of known templates, from the per-window template counts."""

    new_errors: bool = Field(default=True, description="Open new_error_template anomalies.")
    new_template_windows: int = Field(
        default=10, ge=1, description="A template is new for this many windows after first seen."
    )
    new_error_min_count: int = Field(
        default=1, ge=1, description="Messages of a new error template a window needs."
    )
    spikes: bool = Field(default=True, description="Open log_spike anomalies.")
    baseline_windows: int = Field(
        default=30, ge=3, description="Recent windows of a template's own baseline."
    )
    min_baseline_windows: int = Field(
        default=10, ge=1, description="Windows a template must be known before a spike counts."
    )
    spike_min_count: int = Field(default=10, ge=1, description="Fewer messages: never a spike.")
    spike_factor: float = Field(
        default=5.0, gt=1, description="A spike is at least this many times the usual count."
    )
    spike_alpha: float = Field(
        default=1e-4,
        gt=0,
        lt=1,
        description="Poisson tail probability of the count under the baseline rate.",
    )

    @model_validator(mode="after")
    def _baseline_fits(self) -> LogDetection:
        if self.min_baseline_windows > self.baseline_windows:
            raise ValueError("min_baseline_windows must not exceed baseline_windows")
        return self
