"""The per-cycle artifacts: what the agent saw, decided and did, as validated JSON.

Each model is written to ``<data_dir>/cycles/<cycle-id>/<kind>.json`` and its
JSON Schema is published by ``selfheal schema``, so other tools can read a
cycle without importing selfheal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    # Non-finite numbers (an infinite histogram quantile, say) are written as the
    # strings "Infinity"/"NaN" so the artifact reads back instead of holding null.
    model_config = ConfigDict(ser_json_inf_nan="strings")


class _Artifact(_Model):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")
    cycle_id: str


class WindowSnapshot(_Model):
    """One window as detection saw it."""

    component: str
    instance: str = ""
    start: datetime
    count: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    health: float | None
    versions: dict[str, int] = Field(default_factory=dict)
    gauges: dict[str, float] = Field(
        default_factory=dict, description="Last value of each watched gauge in the window."
    )


class TelemetryArtifact(_Artifact):
    """The windows around the incident, for every component."""

    window_s: float
    windows: list[WindowSnapshot]
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AnomalyEntry(_Model):
    """One anomaly of the cycle."""

    fingerprint: str
    component: str
    metric: str
    category: str
    detector: str
    severity: str
    onset: datetime
    last_seen: datetime
    consecutive_windows: int
    value: float
    threshold: float
    baseline: float | None
    score: float = Field(default=0.0, description="Streaming detector score (0-1) at its highest.")
    evidence: dict[str, Any] = Field(default_factory=dict)


class AnomaliesArtifact(_Artifact):
    """Why the cycle opened."""

    anomalies: list[AnomalyEntry]


class SuspectEntry(_Model):
    """One ranked suspect commit with the contribution of every feature."""

    commit: str
    author: str
    committed_at: datetime
    subject: str
    files: list[str]
    score: float
    confidence: float
    features: dict[str, float]
    file: str | None = None
    line: int | None = None
    functions: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Functions (path:function) behind the function features, by how each was "
        "found: named (by a frame or a slow operation), reached (called from a named one), "
        "called (shared code the component calls).",
    )


class OperationEntry(_Model):
    """An operation of the diagnosed component that got slower or started failing at the onset.

    Means are medians of per-window mean latencies, rates are errors over
    records, counts are records, before the onset (healthy windows) and after.
    ``baseline`` is ``own`` when the operation was compared with its own
    windows before, ``component`` when it was new or too rare before and the
    whole component's windows stood in.
    """

    operation: str
    changes: list[Literal["slower", "failing"]]
    baseline: Literal["own", "component"]
    before_count: int
    after_count: int
    before_mean_ms: float | None
    after_mean_ms: float | None
    before_error_rate: float
    after_error_rate: float
    slowdown: float = Field(description="After over before mean latency; 1 unless beyond noise.")
    error_ratio: float = Field(
        description="After over (add-one smoothed) before error rate; 1 unless beyond noise."
    )
    moved: float = Field(description="log2 of the larger of slowdown and error_ratio; ranks them.")


class Candidate(_Model):
    """One fix to try, in order, and what it is believed to fix.

    ``component`` and ``category`` say where the cause is thought to be and of
    what kind; ``confidence`` is the calibrated probability that the candidate's
    commit is the culprit, with each feature's contribution in ``features``.
    Artifacts written before these fields existed read back with their defaults.
    """

    strategy: Literal["revert_commit", "redeploy_version"]
    component: str | None = None
    category: str | None = None
    commit: str | None = None
    version: str | None = None
    file: str | None = None
    line: int | None = None
    confidence: float | None = None
    features: dict[str, float] = Field(default_factory=dict)
    reason: str = ""


class ComponentEntry(_Model):
    """One component ranked as a possible root cause, with each feature's contribution."""

    component: str
    score: float
    metric: str = Field(
        description="The metric whose shift counted most (another kind than the front's counts half)."
    )
    anomalous: bool
    contributions: dict[str, float]


class DiagnosisArtifact(_Artifact):
    """Where the cause is, how sure the agent is, and what it will try.

    ``component`` is where the anomaly was seen; ``root_component`` the
    component whose code was diagnosed (the highest-ranked anomalous one of
    ``components``, else the same), with the ranking's reasons in ``evidence``.
    ``operations`` are the root component's operations that moved at the
    onset, passed to the suspect ranking by name. Artifacts written before a
    field with a default existed read back with that default.
    """

    component: str
    root_component: str | None = None
    components: list[ComponentEntry] = Field(default_factory=list)
    call_graph: Literal["configured", "learned", "none", ""] = Field(
        default="", description="How the call graph ranking the components was known."
    )
    category: str
    metric: str
    onset: datetime
    healthy_version: str | None
    unhealthy_version: str | None
    suspect_commit: str | None
    file: str | None
    line: int | None
    confidence: float
    conclusive: bool
    suspects: list[SuspectEntry]
    candidates: list[Candidate]
    change_events: list[dict[str, Any]]
    evidence: list[str]
    operations: list[OperationEntry] = Field(
        default_factory=list,
        description="Operations that got slower or started failing, most moved first.",
    )


class PatchArtifact(_Artifact):
    """The candidate fix: the diff (also in ``fix.patch``), why, and the tests that must pass."""

    candidate_index: int
    strategy: str
    commit: str | None
    base_version: str
    target_version: str | None = None
    files: list[str]
    diff_bytes: int
    title: str
    description: str
    tests: list[str]
    pattern_signature: str | None = None
    pattern_used: bool = False


class CommandRun(_Model):
    """One command run in the sandbox."""

    argv: list[str]
    tree: Literal["unpatched", "patched"]
    exit_code: int | None
    duration_s: float
    timed_out: bool
    output_tail: str


class ValidationArtifact(_Artifact):
    """What the sandbox showed and the verdict."""

    candidate_index: int
    base_version: str
    version: str | None
    apply_check: bool
    tests_unpatched: bool | None
    tests_patched: bool
    benchmark_metric: str | None
    benchmark_unpatched: float | None
    benchmark_patched: float | None
    improvement: float | None
    required_improvement: float
    passed: bool
    reasons: list[str]
    runs: list[CommandRun]


class WaveEntry(_Model):
    """One wave: targets, when, and its gate."""

    index: int
    targets: list[str]
    status: str
    applied_at: datetime | None
    gate: dict[str, Any]


class DeploymentArtifact(_Artifact):
    """The rollout as it happened."""

    version: str
    previous_versions: dict[str, str | None]
    waves: list[WaveEntry]
    outcome: Literal["healthy", "gate_failed", "aborted", "rolled_back"]
    final_versions: dict[str, str | None]


class PatternEntry(_Model):
    """One learned pattern."""

    signature: str
    component: str
    category: str
    metric: str
    files: list[str]
    strategy: str
    successes: int
    failures: int
    confidence: float


class PatternsArtifact(_Artifact):
    """What this cycle taught, and the whole library after it."""

    outcome: str
    learned: PatternEntry | None
    library: list[PatternEntry]


ARTIFACT_MODELS: dict[str, type[BaseModel]] = {
    "telemetry": TelemetryArtifact,
    "anomalies": AnomaliesArtifact,
    "diagnosis": DiagnosisArtifact,
    "patch": PatchArtifact,
    "validation": ValidationArtifact,
    "deployment": DeploymentArtifact,
    "patterns": PatternsArtifact,
}
