"""What a fault-injection trial ended in, and what the uninterrupted run ends in.

``TrialResult`` is read back from the outside once every process of a trial
has stopped (``tests/support/faults.py`` builds it); ``expected_signature``
is the uninterrupted scenario's ending, as ``tests/test_demo_scenarios.py``
shows it. ``problems`` names every difference and everything left behind, by
category, so a test can assert on it and a benchmark can count it.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.demo.config import TARGETS
from states import machine
from states.artifacts import ARTIFACT_MODELS
from storage import repository as repo
from storage.db import Database

_CYCLE = [
    ("detecting", "diagnosing"),
    ("diagnosing", "fixing"),
    ("fixing", "validating"),
]
_AUTO = [("validating", "deploying")]
_APPROVED = [
    ("validating", "awaiting_approval"),
    ("awaiting_approval", "paused"),
    ("paused", "awaiting_approval"),
    ("awaiting_approval", "deploying"),
]
_ENDINGS = {
    "resolved": [("deploying", "learning"), ("learning", "idle")],
    "bad-fix": [("deploying", "rolling_back"), ("rolling_back", "learning"), ("learning", "idle")],
}


def expected_path(scenario: str, approval: bool = False) -> list[tuple[str, str]]:
    """The cycle's transitions in the uninterrupted run (with the operator's pause and approval)."""
    return [*_CYCLE, *(_APPROVED if approval else _AUTO), *_ENDINGS[scenario]]


# --- what a trial saw ----------------------------------------------------------------------


@dataclass
class Kill:
    """One armed daemon: whether it reached its point, and what the next start reported."""

    point: str
    reached: bool
    exit_code: int | None
    state_at_exit: str
    daemon_log: str
    reaper_report: dict[str, Any] | None = None


@dataclass
class TrialResult:
    """Everything a trial read back once every process of it was stopped."""

    scenario: str
    points: list[str]
    kills: list[Kill]
    cycle_id: str
    outcome: str | None
    path: list[tuple[str, str]]
    chain_gaps: list[str]
    actors: dict[str, str]
    wave_statuses: list[str]
    deploy_actions: list[tuple[str, int, str, str]]
    starts: dict[str, list[str]]
    fleet: dict[str, str]
    deployment_outcome: str | None
    pattern: tuple[str, int, int] | None
    artifact_kinds: list[str]
    artifact_problems: list[str]
    commands: list[tuple[str, str]]
    worktrees: list[str]
    sandbox_entries: list[str]
    child_notes: list[str]
    leftovers: dict[int, str]
    seconds: float
    daemon_logs: list[str] = field(default_factory=list)
    approval: bool = False

    def signature(self) -> dict[str, Any]:
        """The parts that must equal the uninterrupted run's."""
        return {
            "outcome": self.outcome,
            "path": self.path,
            "waves": self.wave_statuses,
            "starts": self.starts,
            "fleet": self.fleet,
            "deployment": self.deployment_outcome,
            "pattern": self.pattern,
            "artifacts": self.artifact_kinds,
        }

    def duplicate_deploys(self, expected_starts: dict[str, list[str]]) -> int:
        """Target restarts beyond the uninterrupted run's (a wave applied twice somewhere)."""
        extra = 0
        for target, roles in self.starts.items():
            wanted = expected_starts.get(target, [])
            for role in set(roles):
                extra += max(0, roles.count(role) - wanted.count(role))
        return extra

    def lost_artifacts(self) -> int:
        """Artifacts missing, torn, unparseable or differing from their recorded hash."""
        return len(ARTIFACT_MODELS) - len(self.artifact_kinds) + len(self.artifact_problems)

    def problems(self, expected: dict[str, Any]) -> dict[str, list[str]]:
        """What differs from ``expected`` (a signature) or was left behind, by category."""
        found: dict[str, list[str]] = {}

        def note(category: str, text: str) -> None:
            found.setdefault(category, []).append(text)

        for kill in self.kills:
            if not kill.reached:
                note("kill", f"{kill.point} was never reached")
            elif kill.exit_code != -9:
                note("kill", f"{kill.point}: the daemon exited {kill.exit_code}, not by SIGKILL")
        mine = self.signature()
        for key, want in expected.items():
            if mine.get(key) != want:
                note("outcome", f"{key}: got {mine.get(key)!r}, uninterrupted run had {want!r}")
        duplicates = self.duplicate_deploys(expected.get("starts", {}))
        if duplicates:
            note("deploys", f"{duplicates} target start(s) beyond the uninterrupted run's")
        undone = [a for a in self.deploy_actions if a[3] != "done"]
        if undone:
            note("deploys", f"deploy records never confirmed: {undone}")
        for problem in self.artifact_problems:
            note("artifacts", problem)
        for gap in self.chain_gaps:
            note("transitions", gap)
        for name, items in (
            ("worktrees", self.worktrees),
            ("sandbox entries", self.sandbox_entries),
            ("child notes", self.child_notes),
            ("processes", [f"{pid}: {cmd}" for pid, cmd in self.leftovers.items()]),
        ):
            if items:
                note("leftovers", f"{name}: {items}")
        return found


def expected_signature(scenario: str, approval: bool = False) -> dict[str, Any]:
    """What the uninterrupted scenario ends in (as ``tests/test_demo_scenarios.py`` shows)."""
    common = {"path": expected_path(scenario, approval), "artifacts": sorted(ARTIFACT_MODELS)}
    if scenario == "bad-fix":
        starts = {t: ["healthy", "release"] for t in TARGETS}
        starts[TARGETS[0]] = ["healthy", "release", "fix", "release"]
        return common | {
            "outcome": "rolled_back",
            "waves": ["failed", "planned", "planned"],
            "starts": starts,
            "fleet": dict.fromkeys(TARGETS, "release"),
            "deployment": "rolled_back",
            "pattern": ("rolled_back", 0, 1),
        }
    return common | {
        "outcome": "resolved",
        "waves": ["passed", "passed", "passed"],
        "starts": {t: ["healthy", "release", "fix"] for t in TARGETS},
        "fleet": dict.fromkeys(TARGETS, "fix"),
        "deployment": "healthy",
        "pattern": ("resolved", 1, 0),
    }


# --- reading back --------------------------------------------------------------------------


def artifact_check(db: Database, cycle_dir: Path) -> tuple[list[str], list[str]]:
    """(kinds that parse and match their record, problems) for one cycle's directory."""
    recorded = {a.kind: a for a in db.query(lambda s: repo.artifacts(s, cycle_dir.name))}
    kinds, problems = [], []
    for kind, model in ARTIFACT_MODELS.items():
        path = cycle_dir / f"{kind}.json"
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        data = path.read_bytes()
        row = recorded.get(kind)
        if row is None:
            problems.append(f"{path.name} exists but was never recorded")
            continue
        if row.size != len(data) or hashlib.sha256(data).hexdigest() != row.sha256:
            problems.append(f"{path.name} differs from its record (torn or rewritten)")
            continue
        try:
            model.model_validate_json(data)
        except ValidationError as exc:
            problems.append(f"{path.name} does not parse: {exc.errors()[:1]}")
            continue
        kinds.append(kind)
    patch = recorded.get("fix.patch")
    if patch is None or not Path(patch.path).exists():
        problems.append("fix.patch is missing or unrecorded")
    problems += [f"temporary left: {p.name}" for p in cycle_dir.glob(".*.tmp")]
    return sorted(kinds), problems


def chain_gaps(db: Database) -> list[str]:
    """Consecutive transitions (all of them, not only the cycle's) that do not join up."""
    rows = db.query(lambda s: repo.recent_transitions(s, 1_000_000))[::-1]
    gaps = [
        f"#{a.id} ends in {a.dest} but #{b.id} starts from {b.source}"
        for a, b in itertools.pairwise(rows)
        if b.source != a.dest
    ]
    if rows and rows[0].source != machine.IDLE:
        gaps.append(f"the first transition #{rows[0].id} starts from {rows[0].source}")
    return gaps
