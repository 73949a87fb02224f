"""A learned pattern changes how the next incident with the same signature is handled.

The agent runs with autonomy ``approve`` and a pattern threshold of 0.6, so
one resolved incident (confidence 2/3) is enough to lift approval for the
next one with the same signature. The first incident must wait for an
operator (approved with ``selfheal override approve``); then the team merges
the agent's fix and later commits the same change to ``shop/catalog.py``
again, and the second incident goes from validation straight to deployment.

Everything is real: the daemon subprocess, the fleet of shop instances on
127.0.0.1, the load generator, git, and the operator's CLI command. The
scenario runs once per module; each test checks one thing it should show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from agent.demo.config import DemoOptions
from agent.demo.workspace import commit_regression
from states.artifacts import DiagnosisArtifact, PatchArtifact, PatternsArtifact
from states.learn.signatures import confidence_of
from storage import repository as repo
from storage.db import Database, open_database
from storage.tables import CycleRow, TransitionRow
from tests.support.cli import run_cli
from tests.support.history import reintroduce_regression
from tests.support.polling import wait_for
from tests.support.records import (
    agent_state,
    cycles,
    path_of,
    read_artifacts,
    transition_log_problems,
    transitions,
)
from tests.support.stage import Stage, build_stage, finalize

OPTIONS = DemoOptions(benchmark_repeats=1)
HEALTHY_WINDOWS = 6
CYCLE_TIMEOUT_S = 240.0
SIGNATURE = "catalog:latency:p95_ms:shop/catalog.py"
APPROVER = "oncall-ana"
THRESHOLD = 0.6


@dataclass(frozen=True)
class TwoIncidents:
    """The finished scenario, read back from a closed workspace."""

    stage: Stage
    db: Database
    first: CycleRow
    second: CycleRow
    approve_output: str
    pattern_after_first: tuple[int, int, float] | None
    fixed: str
    second_release: str
    leftovers: dict[int, str]

    def log(self, cycle: CycleRow) -> list[TransitionRow]:
        return transitions(self.db, cycle.id)

    def artifact(self, cycle: CycleRow, kind: str) -> object:
        return read_artifacts(self.db, self.stage.data_dir / "cycles" / cycle.id)[kind]


def _approve(stage: Stage, reason: str) -> str:
    done = run_cli(stage.config, "override", "approve", "--reason", reason, "--by", APPROVER)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _cycle_awaiting_approval(stage: Stage) -> str | None:
    state = agent_state(stage.db())
    return state.cycle_id if state.state == "awaiting_approval" else None


def _pattern_counts(db: Database) -> tuple[int, int, float] | None:
    row = db.query(lambda s: repo.pattern(s, SIGNATURE))
    return None if row is None else (row.successes, row.failures, row.confidence)


@dataclass(frozen=True)
class Observed:
    """What the scenario saw while it ran (ids and versions, the CLI's answer, the pattern)."""

    first: str
    second: str
    approve_output: str
    pattern_after_first: tuple[int, int, float] | None
    fixed: str
    second_release: str


def _run_two_incidents(stage: Stage) -> Observed:
    stage.start_daemon()
    stage.await_baseline(HEALTHY_WINDOWS)
    release = commit_regression(stage.repo)
    first_at = datetime.now(UTC)
    stage.deploy_everywhere(release.head_sha)
    waiting = wait_for(
        lambda: _cycle_awaiting_approval(stage),
        timeout_s=CYCLE_TIMEOUT_S,
        what="the first cycle to wait for approval",
        explain=stage.explain,
    )
    approve_output = _approve(stage, "the revert is right; ship it")
    first = stage.await_cycle_closed(first_at, CYCLE_TIMEOUT_S)
    assert first == waiting
    pattern_after_first = _pattern_counts(stage.db())

    fixed = stage.db().query(lambda s: repo.cycle(s, first)).validated_version
    assert fixed is not None, "the first cycle published no fixed version"
    second_release = reintroduce_regression(stage.repo.path, fixed)
    second_at = datetime.now(UTC)
    stage.deploy_everywhere(second_release)
    second = stage.await_cycle_closed(second_at, CYCLE_TIMEOUT_S)
    return Observed(first, second, approve_output, pattern_after_first, fixed, second_release)


@pytest.fixture(scope="module")
def incidents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoIncidents]:
    workspace = tmp_path_factory.mktemp("pattern-feedback")
    stage = None
    db = None
    try:
        stage = build_stage(
            workspace, OPTIONS, autonomy="approve", pattern_confidence=THRESHOLD, cooldown_s=0
        )
        seen = _run_two_incidents(stage)
        leftovers = stage.close()
        db = open_database(stage.data_dir / "selfheal.db")
        yield TwoIncidents(
            stage=stage,
            db=db,
            first=db.query(lambda s: repo.cycle(s, seen.first)),
            second=db.query(lambda s: repo.cycle(s, seen.second)),
            approve_output=seen.approve_output,
            pattern_after_first=seen.pattern_after_first,
            fixed=seen.fixed,
            second_release=seen.second_release,
            leftovers=leftovers,
        )
    finally:
        if db is not None:
            db.dispose()
        finalize(stage, workspace)


def test_both_incidents_share_one_signature_and_are_resolved(incidents: TwoIncidents) -> None:
    assert [c.id for c in cycles(incidents.db)] == [incidents.first.id, incidents.second.id]
    for cycle in (incidents.first, incidents.second):
        assert (cycle.outcome, cycle.signature) == ("resolved", SIGNATURE)
        assert transition_log_problems(incidents.log(cycle)) == []


def test_first_incident_waits_for_the_operator_who_is_recorded(incidents: TwoIncidents) -> None:
    assert "queued command" in incidents.approve_output
    log = incidents.log(incidents.first)
    assert path_of(log)[2:5] == [
        ("fixing", "validating"),
        ("validating", "awaiting_approval"),
        ("awaiting_approval", "deploying"),
    ]
    approval = log[4]
    assert (approval.trigger, approval.actor) == ("approve", "operator")
    assert approval.reason == f"the revert is right; ship it (by {APPROVER})"
    assert incidents.first.approved_by == APPROVER
    patch = incidents.artifact(incidents.first, "patch")
    assert isinstance(patch, PatchArtifact)
    assert (patch.pattern_used, patch.pattern_signature) == (False, None)


def test_one_success_makes_the_pattern_confident_enough(incidents: TwoIncidents) -> None:
    assert incidents.pattern_after_first == (1, 0, confidence_of(1, 0))
    assert confidence_of(1, 0) >= THRESHOLD


def test_second_diagnosis_compares_with_the_fix_that_ran_when_healthy(
    incidents: TwoIncidents,
) -> None:
    diagnosis = incidents.artifact(incidents.second, "diagnosis")
    assert isinstance(diagnosis, DiagnosisArtifact)
    assert (diagnosis.healthy_version, diagnosis.unhealthy_version) == (
        incidents.fixed,
        incidents.second_release,
    )
    assert [s.commit for s in diagnosis.suspects] == [incidents.second_release]
    assert diagnosis.file == "shop/catalog.py"


def test_second_patch_is_built_from_the_learned_pattern(incidents: TwoIncidents) -> None:
    patch = incidents.artifact(incidents.second, "patch")
    assert isinstance(patch, PatchArtifact)
    assert (patch.pattern_used, patch.pattern_signature) == (True, SIGNATURE)
    assert (patch.strategy, patch.commit) == ("revert_commit", incidents.second_release)
    assert incidents.second.pattern_confidence == pytest.approx(confidence_of(1, 0))


def test_second_incident_deploys_without_approval(incidents: TwoIncidents) -> None:
    log = incidents.log(incidents.second)
    assert ("validating", "deploying") in path_of(log)
    assert "awaiting_approval" not in {t.dest for t in log}
    assert {t.actor for t in log} == {"agent"}
    assert incidents.second.approved_by is None


def test_the_pattern_counts_the_second_success(incidents: TwoIncidents) -> None:
    assert _pattern_counts(incidents.db) == (2, 0, confidence_of(2, 0))
    patterns = incidents.artifact(incidents.second, "patterns")
    assert isinstance(patterns, PatternsArtifact)
    assert patterns.learned is not None
    assert (patterns.learned.signature, patterns.learned.successes) == (SIGNATURE, 2)


def test_no_process_of_the_workspace_survives(incidents: TwoIncidents) -> None:
    assert incidents.leftovers == {}
