"""The shape of a phase definition: an ordered list of beats with their execution policy.

A beat names its handler; the policy (timeout, retries, what an error means)
lives here, next to the order, so that changing how cautious a step is never
needs a code change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BeatSpec(BaseModel):
    """One step of a phase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Unique within the phase.")
    handler: str = Field(description="Registered handler name, e.g. 'detect.evaluate_windows'.")
    title: str = Field(default="", description="What the beat does, for status and logs.")
    timeout_s: float = Field(default=60.0, gt=0, description="Budget for one attempt.")
    retries: int = Field(default=0, ge=0, le=20, description="Attempts after the first.")
    retry_delay_s: float = Field(default=1.0, ge=0, description="Wait before a retry.")
    on_error: Literal["fail", "escalate", "continue"] = Field(
        default="fail",
        description=(
            "When attempts are exhausted: 'fail' stops the agent in 'failed' for an operator; "
            "'escalate' ends the cycle in 'learning' as escalated; 'continue' records the "
            "error and goes on with the next beat."
        ),
    )


class SequenceSpec(BaseModel):
    """One phase: the machine state it runs in and its beats, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    phase: str = Field(description="The machine state this sequence runs in.")
    title: str = ""
    beats: tuple[BeatSpec, ...] = Field(min_length=1)
