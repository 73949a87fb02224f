"""The tables: everything the agent must remember across a restart.

Each row type is small and fixed-shape so that a restarted agent (or an
operator reading the file with sqlite3) sees exactly what the running one saw.
Times are stored as timezone-aware UTC datetimes (``storage.columns``). A
table only one storage module reads lives with it (``budget_hours``,
``timers``, ``claims``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from storage.columns import at as _at
from storage.columns import compact_json_column as _compact_json_column
from storage.columns import json_column as _json_column


class SchemaInfo(SQLModel, table=True):
    """One row: the schema version this database was created with."""

    __tablename__ = "schema_info"
    id: int = Field(default=1, primary_key=True)
    version: int
    created_at: datetime = _at()


class AgentStateRow(SQLModel, table=True):
    """One row: where the machine is. ``entry_id`` is the transition that entered ``state``."""

    __tablename__ = "agent_state"
    id: int = Field(default=1, primary_key=True)
    state: str
    paused_from: str | None = None
    cycle_id: str | None = None
    entry_id: int = 0
    updated_at: datetime = _at()


class CycleRow(SQLModel, table=True):
    """One incident, from the anomaly that opened it to the pattern it taught.

    The fact columns are what the machine's guards read, so a restarted agent
    takes the same branch as the one that stopped.
    """

    __tablename__ = "cycle"
    id: str = Field(primary_key=True)
    opened_at: datetime = _at()
    closed_at: datetime | None = _at(default=None)
    outcome: str | None = None
    component: str
    category: str = ""
    metric: str = ""
    signature: str = ""
    cause_found: bool = False
    confidence: float = 0.0
    candidates_total: int = 0
    candidate_index: int = 0
    candidate_ready: bool = False
    validation_passed: bool = False
    validated_version: str | None = None
    gate_passed: bool | None = None
    escalated: bool = False
    escalation_reason: str = ""
    pattern_signature: str | None = None
    pattern_confidence: float = 0.0
    approved_by: str | None = None
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())


class TransitionRow(SQLModel, table=True):
    """One state change, written in the same transaction as the new state."""

    __tablename__ = "transition"
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str | None = Field(default=None, index=True)
    source: str
    dest: str
    trigger: str
    actor: str
    reason: str = ""
    at: datetime = _at()


class BeatRunRow(SQLModel, table=True):
    """The checkpoint of one beat within one visit of a phase (``entry_id``)."""

    __tablename__ = "beat_run"
    __table_args__ = (UniqueConstraint("entry_id", "beat_id"),)
    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(index=True)
    cycle_id: str | None = None
    phase: str
    beat_id: str
    status: str = "pending"
    attempts: int = 0
    started_at: datetime | None = _at(default=None)
    finished_at: datetime | None = _at(default=None)
    not_before: datetime | None = _at(default=None)
    error: str = ""
    output: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())


class ArtifactRow(SQLModel, table=True):
    """Where a cycle's artifact file lives and what it hashed to when written."""

    __tablename__ = "artifact"
    __table_args__ = (UniqueConstraint("cycle_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(index=True)
    kind: str
    path: str
    sha256: str
    size: int
    created_at: datetime = _at()


class CursorRow(SQLModel, table=True):
    """How far a telemetry file has been read, and how to recognise it after rotation."""

    __tablename__ = "telemetry_cursor"
    key: str = Field(primary_key=True)
    source: str
    path: str
    device: int = 0
    inode: int = 0
    offset: int = 0
    head: str = ""
    lines: int = 0
    rejected: dict[str, int] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = _at()


# Closed all-instance windows detection has not judged yet. Written exactly as the
# query that reads them says it: SQLite uses a partial index only for a query whose
# WHERE contains the index's own terms, and a bound parameter would not match ''.
UNEVALUATED = "closed IS 1 AND evaluated IS 0 AND instance = ''"


class WindowRow(SQLModel, table=True):
    """One fixed time window of one component (``instance`` empty for all instances together).

    Latencies are ``samples`` (exact) while a window has few, then ``sketch``
    (a bounded relative-error histogram, see ``states.telemetry.sketches``).
    ``templates`` counts mined messages by ``<source>:<template id>`` (top
    keys, the rest under ``other``); ``new_templates`` lists the templates
    first seen in this window. ``gauges`` holds the last value in the window of
    each gauge the component watches (``[[components.<name>.gauges]]``), by name.
    ``operations`` maps the busiest operation names to ``{"count", "errors",
    "total_ms", "max_ms"}`` (the rest under ``other``, see
    ``states.telemetry.operations``).
    """

    __tablename__ = "metric_window"
    __table_args__ = (
        UniqueConstraint("component", "instance", "start"),
        # Detection's work list, read every tick: only the rows waiting in it are
        # indexed, so finding them costs the same with a day or a month stored.
        Index("ix_metric_window_unevaluated", "start", sqlite_where=text(UNEVALUATED)),
    )
    id: int | None = Field(default=None, primary_key=True)
    component: str = Field(index=True)
    instance: str = ""
    start: datetime = _at(index=True)
    end: datetime = _at()
    count: int = 0
    errors: int = 0
    error_rate: float = 0.0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    health: float | None = None
    score: float | None = None
    closed: bool = False
    evaluated: bool = False
    anomalous: bool = False
    samples: list[float] = Field(default_factory=list, sa_column=_compact_json_column())
    versions: dict[str, int] = Field(default_factory=dict, sa_column=_compact_json_column())
    frames: list[list[Any]] = Field(default_factory=list, sa_column=_compact_json_column())
    sketch: dict[str, Any] = Field(default_factory=dict, sa_column=_compact_json_column())
    templates: dict[str, int] = Field(default_factory=dict, sa_column=_compact_json_column())
    new_templates: list[str] = Field(default_factory=list, sa_column=_compact_json_column())
    gauges: dict[str, float] = Field(default_factory=dict, sa_column=_compact_json_column())
    operations: dict[str, dict[str, float]] = Field(
        default_factory=dict, sa_column=_compact_json_column()
    )


class TemplateStateRow(SQLModel, table=True):
    """A source's template miner (templates, sizes, id counter), written with its cursors."""

    __tablename__ = "telemetry_templates"
    source: str = Field(primary_key=True)
    templates: int = 0
    state: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = _at()


class AnomalyRow(SQLModel, table=True):
    """An anomaly, de-duplicated by fingerprint while it is open."""

    __tablename__ = "anomaly"
    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(index=True)
    component: str
    metric: str
    detector: str
    category: str
    severity: str
    status: str = "open"
    actionable: bool = False
    consecutive: int = 1
    healthy_streak: int = 0
    onset: datetime = _at()
    last_seen: datetime = _at()
    closed_at: datetime | None = _at(default=None)
    value: float = 0.0
    baseline: float | None = None
    threshold: float = 0.0
    score: float = 0.0
    cycle_id: str | None = Field(default=None, index=True)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())


class DetectorStateRow(SQLModel, table=True):
    """A streaming detector's learned state for one series, so a restart loses no baseline."""

    __tablename__ = "detector_state"
    key: str = Field(primary_key=True)
    points: int = 0
    state: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = _at()


class PatternRow(SQLModel, table=True):
    """What a fix strategy did for one incident signature, and how much to trust it."""

    __tablename__ = "pattern"
    signature: str = Field(primary_key=True)
    component: str
    category: str
    metric: str
    files: list[str] = Field(default_factory=list, sa_column=_json_column())
    strategy: str
    successes: int = 0
    failures: int = 0
    confidence: float = 0.0
    last_cycle_id: str | None = None
    updated_at: datetime = _at()


class CommandRow(SQLModel, table=True):
    """An operator command, queued by the CLI and applied by the daemon."""

    __tablename__ = "operator_command"
    id: int | None = Field(default=None, primary_key=True)
    verb: str
    target_state: str | None = None
    force: bool = False
    reason: str = ""
    actor: str = "operator"
    requested_by: str = ""
    created_at: datetime = _at()
    status: str = "queued"
    result: str = ""
    applied_at: datetime | None = _at(default=None)


class DeployActionRow(SQLModel, table=True):
    """Write-ahead record of one deploy or rollback of one target in one wave."""

    __tablename__ = "deploy_action"
    __table_args__ = (UniqueConstraint("cycle_id", "action", "wave", "target"),)
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(index=True)
    action: str
    wave: int
    target: str
    from_version: str | None = None
    to_version: str
    status: str = "intent"
    intent_at: datetime = _at()
    done_at: datetime | None = _at(default=None)
    error: str = ""


class WaveRow(SQLModel, table=True):
    """One wave of a rollout: its targets, when it was applied and what its gate saw."""

    __tablename__ = "wave"
    __table_args__ = (UniqueConstraint("cycle_id", "index"),)
    id: int | None = Field(default=None, primary_key=True)
    cycle_id: str = Field(index=True)
    index: int
    targets: list[str] = Field(default_factory=list, sa_column=_json_column())
    status: str = "planned"
    applied_at: datetime | None = _at(default=None)
    bake_until: datetime | None = _at(default=None)
    gate: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
