"""The configuration tree: one documented model per concern, passed explicitly.

Every field has a default that is safe for a real service (``approve``
autonomy, conservative waves and bakes); the demo's ``config.toml`` turns the
dials down. Loading and error reporting live in ``agent.settings``; here is
only the shape and its validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from states.deploy.local_fleet import LocalFleetSettings
from states.detect.policies import GaugeWatch, LogDetection
from states.telemetry.formats import FormatSpec
from states.telemetry.prometheus_text import parse_selector

Autonomy = Literal["observe", "approve", "auto"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSettings(_Section):
    """How the daemon runs and how much it may do on its own."""

    data_dir: Path = Field(
        default=Path("selfheal-data"), description="State, artifacts, sandboxes."
    )
    poll_interval_s: float = Field(default=10.0, gt=0, description="Seconds between ticks.")
    autonomy: Autonomy = Field(
        default="approve",
        description="observe: never deploy; approve: wait for an operator; auto: deploy validated fixes.",
    )
    max_cycles_per_day: int = Field(default=6, ge=1, description="Incident budget per 24 h.")
    cooldown_s: float = Field(
        default=900.0, ge=0, description="Quiet time per component after a cycle."
    )
    pattern_confidence: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="A pattern at or above this skips approval for its signature.",
    )
    sequences_dir: Path | None = Field(default=None, description="Your own phase definitions.")
    keep_idle_transitions: int = Field(
        default=500, ge=10, description="Poll transitions kept outside cycles."
    )
    keep_cycles: int = Field(
        default=50,
        ge=1,
        description="Closed cycles whose rows and artifact directories are kept; older ones "
        "are pruned, except cycles opened in the last 24 h and each component's latest.",
    )


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


class RepositorySettings(_Section):
    """The service's source repository (read-only for selfheal: sandboxes are worktrees)."""

    path: Path = Field(default=Path("."), description="The live checkout.")
    path_prefixes: list[str] = Field(
        default_factory=list, description="Prefixes to strip from stack-trace file names."
    )


class DiagnoseSettings(_Section):
    """How far back to look and how sure to be."""

    min_confidence: float = Field(
        default=0.5, ge=0, le=1, description="Below: escalate, not guess."
    )
    max_commits: int = Field(default=200, ge=1, description="Commits considered around onset.")
    lookback_s: float = Field(default=7 * 86400.0, gt=0, description="When versions are unknown.")
    max_blamed_frames: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Stack frames whose lines are blamed at the running revision.",
    )
    history_windows: int = Field(
        default=120,
        ge=10,
        description="Windows before onset read to rank components and learn who calls whom.",
    )
    comovement_min_windows: int = Field(
        default=20, ge=3, description="Windows two components must share to be linked."
    )
    comovement_min_correlation: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Latency correlation from which two components count as caller and callee.",
    )


class ValidateSettings(_Section):
    """The checks a candidate must pass in the sandbox."""

    test_command: list[str] = Field(default_factory=lambda: ["python", "-m", "pytest", "-q"])
    benchmark_command: list[str] | None = Field(
        default=None, description="Prints a JSON last line."
    )
    timeout_s: float = Field(default=600.0, gt=0, description="Per command.")
    benchmark_repeats: int = Field(default=3, ge=1, le=50)
    min_improvement: float = Field(default=0.1, ge=0, lt=1, description="Required benchmark gain.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for checks.")
    max_patch_bytes: int = Field(
        default=256 * 1024, gt=0, description="Larger patches are refused."
    )


class CommandDeployerSettings(_Section):
    """Deploy through your own tools; ``{target}`` and ``{version}`` are substituted per argument."""

    targets: list[str] = Field(min_length=1)
    deploy: list[str] = Field(min_length=1)
    rollback: list[str] | None = None
    version: list[str] = Field(min_length=1, description="Prints the version a target runs.")
    timeout_s: float = Field(default=300.0, gt=0)


class DeploySettings(_Section):
    """How fixes reach production."""

    kind: Literal["local-fleet", "command"] = "command"
    waves: list[float] = Field(default_factory=lambda: [25.0, 50.0, 100.0])
    bake_s: float = Field(default=300.0, ge=0, description="Wait after each wave before its gate.")
    min_gate_samples: int = Field(default=20, ge=1, description="Requests needed to judge a wave.")
    max_bake_extensions: int = Field(
        default=3, ge=0, description="Extra bakes when evidence is thin."
    )
    gate_tolerance: float = Field(
        default=1.25, ge=1, description="Updated may be this much worse than control."
    )
    gate_min_delta_ms: float = Field(
        default=5.0, ge=0, description="Latency differences smaller than this never fail a gate."
    )
    deploy_timeout_s: float = Field(default=120.0, gt=0)
    command: CommandDeployerSettings | None = None
    local_fleet: LocalFleetSettings | None = None

    @field_validator("waves")
    @classmethod
    def _waves_rise_to_all(cls, waves: list[float]) -> list[float]:
        if not waves or any(not 0 < w <= 100 for w in waves) or waves != sorted(set(waves)):
            raise ValueError("waves must be increasing percentages in (0, 100]")
        if waves[-1] != 100:
            raise ValueError("the last wave must be 100 (every target)")
        return waves

    @model_validator(mode="after")
    def _deployer_configured(self) -> DeploySettings:
        if self.kind == "command" and self.command is None:
            raise ValueError("kind = 'command' needs a [deploy.command] table")
        if self.kind == "local-fleet" and self.local_fleet is None:
            raise ValueError("kind = 'local-fleet' needs a [deploy.local_fleet] table")
        return self


class Settings(_Section):
    """The whole configuration."""

    agent: AgentSettings = Field(default_factory=AgentSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)
    components: dict[str, ComponentSettings] = Field(default_factory=dict)
    repository: RepositorySettings = Field(default_factory=RepositorySettings)
    diagnose: DiagnoseSettings = Field(default_factory=DiagnoseSettings)
    validate_: ValidateSettings = Field(default_factory=ValidateSettings, alias="validate")
    deploy: DeploySettings

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _scrapes_measure_something(self) -> Settings:
        watched = any(g.selector for c in self.components.values() for g in c.gauges)
        for index, source in enumerate(self.telemetry.metrics):
            if (
                isinstance(source, ScrapeSourceSettings)
                and not source.maps_requests
                and not watched
            ):
                raise ValueError(
                    f"telemetry.metrics.{index} ({source.name!r}): a scrape source needs "
                    "'requests' or 'latency', or a component with gauges to watch "
                    "([[components.<name>.gauges]])"
                )
        return self

    @model_validator(mode="after")
    def _gauges_are_read_and_watched(self) -> Settings:
        queried = {
            gauge.name
            for source in self.telemetry.metrics
            if isinstance(source, QuerySourceSettings)
            for gauge in source.gauges
        }
        watched = {g.name for c in self.components.values() for g in c.gauges}
        for index, source in enumerate(self.telemetry.metrics):
            gauges = source.gauges if isinstance(source, QuerySourceSettings) else []
            for number, gauge in enumerate(gauges):
                if gauge.name not in watched:
                    raise ValueError(
                        f"telemetry.metrics.{index}.gauges.{number}.name: no component watches "
                        f"a gauge named {gauge.name!r}; add [[components.<name>.gauges]] with "
                        f'name = "{gauge.name}" and its limit'
                    )
        for component, settings in self.components.items():
            for number, watch in enumerate(settings.gauges):
                if watch.selector is None and watch.name not in queried:
                    raise ValueError(
                        f"components.{component}.gauges.{number}: {watch.name!r} has no selector "
                        "and no query source reads it; set selector (scrape sources) or add "
                        f'[[telemetry.metrics.gauges]] with name = "{watch.name}" to a query source'
                    )
        return self

    @field_validator("components")
    @classmethod
    def _calls_name_components(
        cls, components: dict[str, ComponentSettings]
    ) -> dict[str, ComponentSettings]:
        for name, settings in components.items():
            for callee in settings.calls:
                if callee == name:
                    raise ValueError(f"components.{name}.calls names the component itself")
                if callee not in components:
                    known = ", ".join(sorted(components))
                    raise ValueError(
                        f"components.{name}.calls names {callee!r}, which is not a configured "
                        f"component (configured: {known}); add a [components.{callee}] table"
                    )
        return components

    def component(self, name: str) -> ComponentSettings:
        """A component's settings, or the defaults for one not named in the config."""
        found = self.components.get(name)
        if found is not None:
            return found
        return ComponentSettings(
            slo_p95_ms=self.detect.default_slo_p95_ms,
            slo_error_rate=self.detect.default_slo_error_rate,
        )
