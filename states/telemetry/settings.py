"""The ``[telemetry]`` section: which log files and metric endpoints are read, and how.

Log sources name files and their format; metric sources are Prometheus
endpoints, scraped (``kind = "scrape"``) or queried with PromQL
(``kind = "query"``). Each model checks what it can on its own (selectors
parse, a query source asks something, no credentials in a URL); whether a
scrape source or a query gauge is watched by some component spans sections
and is checked by ``states.settings.Settings``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from states.telemetry.formats import FormatSpec
from states.telemetry.prometheus_text import parse_selector


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSettings(_Section):
    """One telemetry source: files matched by glob patterns, in one format.

    ``format`` is a kind (``"json"``, ``"logfmt"``, ``"nginx"``, ``"apache"``,
    ``"syslog"``, ``"serilog"``, ``"regex"``, ``"conductor"``) or a table with
    the kind and its options (field mapping, regex pattern, time zone, ...).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    paths: list[str] = Field(min_length=1, description="Glob patterns of log files.")
    format: FormatSpec = Field(default_factory=FormatSpec)

    @field_validator("format", mode="before")
    @classmethod
    def _kind_alone(cls, value: object) -> object:
        return {"kind": value} if isinstance(value, str) else value


# --- metric sources (Prometheus) -------------------------------------------------


class _MetricSourceBase(_Section):
    """What every metric source shares: where it is, how long to wait, which label names the component."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(pattern=r"^https?://", description="Exposition URL, or the server's base URL.")
    timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Whole request, connect to last byte."
    )
    max_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Larger responses are refused."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    component_label: str = Field(default="component", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    component: str | None = Field(default=None, description="For series without the label.")
    latency_scale: float = Field(
        default=1000.0, gt=0, description="To milliseconds (1000 for seconds)."
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        if "@" in url.split("/")[2]:
            raise ValueError("put credentials in 'headers' (Authorization), not in the URL")
        return url


class ScrapeSourceSettings(_MetricSourceBase):
    """A Prometheus text exposition endpoint, scraped once per poll; windows come from deltas."""

    kind: Literal["scrape"]
    requests: str | None = Field(default=None, description="Counter of all requests (a selector).")
    errors: str | None = Field(default=None, description="Counter of failed requests (a selector).")
    latency: str | None = Field(default=None, description="Histogram of request durations.")
    instance_label: str | None = Field(default=None, description="Also write per-instance windows.")
    max_gap_s: float = Field(
        default=900.0, gt=0, description="Longer gaps between scrapes: no delta."
    )

    @field_validator("requests", "errors", "latency")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            parse_selector(value)
        return value

    @property
    def maps_requests(self) -> bool:
        """Whether the source measures requests (else it only records watched gauges)."""
        return self.requests is not None or self.latency is not None


class MetricQueries(_Section):
    """PromQL per window field, evaluated at each window's end; ``$window`` is its width."""

    count: str | None = Field(default=None, description="Requests in the window.")
    errors: str | None = Field(default=None, description="Failed requests in the window.")
    error_rate: str | None = Field(default=None, description="Failed over all, 0..1.")
    p50: str | None = None
    p95: str | None = None
    p99: str | None = None


class QueryGauge(_Section):
    """A gauge read with PromQL at each window's end, kept in the window's ``gauges``.

    ``name`` is the gauge's name in windows: a component watching a gauge of
    that name (``[[components.<name>.gauges]]``, its limit and horizon) has it
    judged by the leak detector.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="A watched gauge's name.")
    query: str = Field(min_length=1, description="PromQL; the largest series per component.")


class QuerySourceSettings(_MetricSourceBase):
    """A Prometheus server's HTTP API, queried once per finished window."""

    kind: Literal["query"]
    queries: MetricQueries = Field(default_factory=MetricQueries)
    gauges: list[QueryGauge] = Field(default_factory=list, description="Gauges to read.")
    backfill_windows: int = Field(
        default=1, ge=1, le=1000, description="Windows read on first poll."
    )
    max_windows_per_poll: int = Field(default=60, ge=1, le=1000, description="Catch-up per poll.")

    @model_validator(mode="after")
    def _asks_something(self) -> QuerySourceSettings:
        if not self.maps_requests and not self.gauges:
            raise ValueError(
                "at least one query is needed: set [telemetry.metrics.queries] "
                "or add [[telemetry.metrics.gauges]]"
            )
        names = [g.name for g in self.gauges]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"gauge names must be distinct; repeated: {', '.join(repeated)}")
        return self

    @property
    def maps_requests(self) -> bool:
        """Whether the source measures requests (else it only records gauges)."""
        return any(self.queries.model_dump().values())


MetricSourceSettings = Annotated[
    ScrapeSourceSettings | QuerySourceSettings, Field(discriminator="kind")
]


class TelemetrySettings(_Section):
    """How telemetry is read and folded into windows."""

    window_s: float = Field(default=60.0, gt=0, description="Width of a metric window.")
    lateness_s: float = Field(default=10.0, ge=0, description="How late a record may arrive.")
    retention_s: float = Field(default=7 * 86400.0, gt=0, description="How long windows are kept.")
    max_bytes_per_poll: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Per file and poll."
    )
    max_line_bytes: int = Field(default=1024 * 1024, gt=0, description="Longer lines are rejected.")
    sources: list[SourceSettings] = Field(default_factory=list)
    metrics: list[MetricSourceSettings] = Field(
        default_factory=list, description="Prometheus endpoints scraped or queried."
    )
