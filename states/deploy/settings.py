"""The ``[deploy]`` section: the waves, bakes and gates of a rollout, and its deployer.

A rollout's shape (waves rising to every target, bake, gate tolerances) is
checked here, and so is that the chosen deployer has its table:
``[deploy.command]`` (your own tools, modelled here) or
``[deploy.local_fleet]`` (``states.deploy.local_fleet``, beside the fleet whose
placeholders it checks).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from states.deploy.local_fleet import LocalFleetSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
