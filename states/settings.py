"""The configuration tree: one documented model per concern, passed explicitly.

Every field has a default that is safe for a real service (``approve``
autonomy, conservative waves and bakes); the demo's ``config.toml`` turns the
dials down. Loading and error reporting live in ``agent.settings``; here is
only the shape and its validation.

The large sections live beside the phase that reads them
(``states.telemetry.settings``, ``states.detect.settings``,
``states.deploy.settings``); here are the root, the small sections (agent,
repository, diagnose, validate) and the checks that span sections (a scrape
source or a gauge query needs a component watching it, calls name components).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from states.deploy.settings import DeploySettings
from states.detect.settings import ComponentSettings, DetectSettings
from states.telemetry.settings import (
    QuerySourceSettings,
    ScrapeSourceSettings,
    TelemetrySettings,
)

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
