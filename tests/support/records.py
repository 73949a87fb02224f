"""Reading what the agent recorded: its state, cycles, transitions, beats, waves and artifacts.

The database is read through the project's own repository functions, the
same way ``selfheal status`` reads it while the daemon writes (WAL readers).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from states.artifacts import ARTIFACT_MODELS
from storage import deployment_store
from storage import repository as repo
from storage.db import Database
from storage.tables import AgentStateRow, BeatRunRow, CycleRow, TransitionRow, WaveRow

# Phases a cycle may legitimately enter more than once: a failed validation
# goes back to fixing for the next candidate, which is then validated again.
LOOP_STATES = frozenset({"fixing", "validating"})


def agent_state(db: Database) -> AgentStateRow:
    return db.query(lambda s: repo.agent_state(s, datetime.now(UTC)))


def cycles(db: Database) -> list[CycleRow]:
    """Every cycle, oldest first."""
    return db.query(lambda s: repo.cycles(s, 1000))[::-1]


def closed_cycles(db: Database) -> list[CycleRow]:
    return [c for c in cycles(db) if c.closed_at is not None]


def transitions(db: Database, cycle_id: str) -> list[TransitionRow]:
    return db.query(lambda s: repo.cycle_transitions(s, cycle_id))


def beat_runs(db: Database, cycle_id: str) -> list[BeatRunRow]:
    return db.query(lambda s: repo.cycle_beat_runs(s, cycle_id))


def waves(db: Database, cycle_id: str) -> list[WaveRow]:
    return db.query(lambda s: deployment_store.waves(s, cycle_id))


def path_of(rows: list[TransitionRow]) -> list[tuple[str, str]]:
    return [(t.source, t.dest) for t in rows]


def transition_log_problems(rows: list[TransitionRow]) -> list[str]:
    """Gaps, repeats and re-entered phases in one cycle's transition log (empty if sound)."""
    problems = []
    for before, after in itertools.pairwise(rows):
        if after.source != before.dest:
            problems.append(
                f"gap: #{before.id} ends in {before.dest}, #{after.id} starts from {after.source}"
            )
    keys = Counter((t.source, t.dest, t.trigger, t.at) for t in rows)
    problems += [f"recorded {n} times: {key}" for key, n in keys.items() if n > 1]
    entered = Counter(t.dest for t in rows)
    looped = any((t.source, t.dest) == ("validating", "fixing") for t in rows)
    for state, n in entered.items():
        if n > 1 and not (looped and state in LOOP_STATES):
            problems.append(f"entered {state} {n} times")
    return problems


def read_artifacts(db: Database, cycle_dir: Path) -> dict[str, BaseModel]:
    """Every artifact of a cycle parsed with its model, after checking the recorded SHA-256."""
    recorded = {a.kind: a for a in db.query(lambda s: repo.artifacts(s, cycle_dir.name))}
    parsed: dict[str, BaseModel] = {}
    for kind, model in ARTIFACT_MODELS.items():
        path = cycle_dir / f"{kind}.json"
        if not path.exists():
            continue
        data = path.read_bytes()
        row = recorded.get(kind)
        assert row is not None, f"{path} exists but the database has no record of it"
        assert hashlib.sha256(data).hexdigest() == row.sha256, f"{path} differs from its record"
        parsed[kind] = model.model_validate_json(data)
    return parsed
