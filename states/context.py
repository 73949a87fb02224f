"""What a beat handler is given, and what it gives back.

The context carries collaborators explicitly (settings, database, clock,
deployer, artifact writer) so handlers stay testable and never reach for globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from states.clock import Clock
from states.deploy.deployers import Deployer
from states.settings import Settings
from states.telemetry.ingest_memory import IngestMemory
from storage import repository as repo
from storage.artifacts import write_atomically
from storage.db import Database


class TemporaryError(Exception):
    """Worth retrying after ``delay_s`` (a target not answering yet, a lock)."""

    def __init__(self, message: str, delay_s: float = 1.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(Exception):
    """Retrying cannot help; the beat's ``on_error`` policy applies at once."""


@dataclass(frozen=True)
class BeatResult:
    """A handler's answer.

    ``output`` is checkpointed with the beat. ``wait_until`` asks to be called
    again at that time (a durable timer, not a sleep). ``cycle_updates`` are
    cycle fact columns applied in the same transaction as the checkpoint, so a
    crash can never apply them twice or lose them.
    """

    output: dict[str, Any] = field(default_factory=dict)
    wait_until: datetime | None = None
    wait_reason: str = ""
    cycle_updates: dict[str, Any] = field(default_factory=dict)


class ArtifactWriter:
    """Writes a cycle's artifacts atomically and records them in the database."""

    def __init__(self, db: Database, root: Path, clock: Clock) -> None:
        self._db = db
        self._root = root
        self._clock = clock

    def cycle_dir(self, cycle_id: str) -> Path:
        """Where one cycle's artifacts live."""
        return self._root / "cycles" / cycle_id

    def write_model(self, cycle_id: str, kind: str, model: BaseModel) -> Path:
        """Write ``<kind>.json`` from a pydantic model."""
        data = model.model_dump_json(indent=2).encode() + b"\n"
        return self.write_bytes(cycle_id, f"{kind}.json", kind, data)

    def write_bytes(self, cycle_id: str, name: str, kind: str, data: bytes) -> Path:
        """Write any file of a cycle and record it under ``kind``."""
        path = self.cycle_dir(cycle_id) / name
        digest = write_atomically(path, data)
        now = self._clock.now()
        self._db.transact(
            lambda s: repo.record_artifact(
                s,
                cycle_id=cycle_id,
                kind=kind,
                path=str(path),
                sha256=digest,
                size=len(data),
                now=now,
            )
        )
        return path


@dataclass
class BeatContext:
    """Everything one attempt of one beat may use."""

    settings: Settings
    db: Database
    clock: Clock
    artifacts: ArtifactWriter
    deployer_factory: Callable[[], Deployer]
    phase: str
    beat_id: str
    cycle_id: str | None
    entry_id: int
    attempt: int
    deadline: float
    outputs: dict[str, dict[str, Any]]
    previous_output: dict[str, Any]
    waited: bool
    stop_requested: Callable[[], bool]
    log: Any = field(default_factory=lambda: structlog.get_logger("selfheal.beat"))
    telemetry: IngestMemory = field(default_factory=IngestMemory)  # kept between polls

    @property
    def data_dir(self) -> Path:
        """The agent's data directory."""
        return self.settings.agent.data_dir

    def require_cycle(self) -> str:
        """The cycle id; a cycle phase without one is a bug worth stopping for."""
        if self.cycle_id is None:
            raise PermanentError(f"beat {self.beat_id!r} of {self.phase!r} needs a cycle")
        return self.cycle_id

    def remaining_s(self) -> float:
        """Seconds left in this attempt's budget."""
        return max(0.0, self.deadline - self.clock.monotonic())
