"""A daemon killed mid-cycle is restarted and finishes the cycle as if nothing happened.

One incident, two crashes: the daemon subprocess is SIGKILLed (a) while the
``sandbox-checks`` beat runs a check in its worktrees and (b) while the first
rollout wave bakes and the second is not applied yet. Each time a new daemon
is started on the same data directory and must reap what the dead one left,
resume from the checkpoints, and reach the uninterrupted demo's outcome
(``resolved``) with every target restarted on the fix exactly once.

Deployments are counted from the targets' side: every instance of the shop is
started through ``tests/support/start_recorder.py``, which notes the version
its process was given before becoming the service. The scenario runs once per
module; each test checks one thing it should show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.demo.config import TARGETS, DemoOptions
from agent.demo.workspace import commit_regression
from states.artifacts import ARTIFACT_MODELS, DeploymentArtifact
from states.git import worktrees_under
from storage import repository as repo
from storage.db import Database, open_database
from storage.tables import CycleRow
from tests.support.history import git
from tests.support.polling import wait_for
from tests.support.processes import is_alive
from tests.support.records import (
    agent_state,
    beat_runs,
    path_of,
    read_artifacts,
    transition_log_problems,
    transitions,
    waves,
)
from tests.support.stage import Stage, build_stage, finalize

OPTIONS = DemoOptions(benchmark_repeats=1)
HEALTHY_WINDOWS = 6
PHASE_TIMEOUT_S = 240.0
REAPED = "reaped what a previous run left behind"
UNINTERRUPTED_PATH = [
    ("detecting", "diagnosing"),
    ("diagnosing", "fixing"),
    ("fixing", "validating"),
    ("validating", "deploying"),
    ("deploying", "learning"),
    ("learning", "idle"),
]


@dataclass(frozen=True)
class KilledWhileValidating:
    """What the first crash left: the beat's checkpoint, the worktrees, the noted children."""

    beat_statuses: list[str]
    worktrees: list[Path]
    child_pids: set[int]
    reaper_report: dict[str, Any]


@dataclass(frozen=True)
class KilledBetweenWaves:
    """Waves and instance starts at the second crash."""

    wave_statuses: list[str]
    canary_applied_at: datetime | None
    starts: dict[str, list[str | None]]


@dataclass(frozen=True)
class ResumedRun:
    """The scenario once finished and every process of it stopped."""

    stage: Stage
    db: Database
    cycle: CycleRow
    release_head: str
    validating: KilledWhileValidating
    between_waves: KilledBetweenWaves
    last_daemon_exit: int | None
    last_daemon_events: list[dict[str, Any]]
    fleet_versions: dict[str, str | None]
    leftovers: dict[int, str]

    @property
    def sandboxes(self) -> Path:
        return self.stage.data_dir / "sandboxes"


def _child_notes(stage: Stage) -> list[dict[str, Any]]:
    notes = []
    for path in sorted((stage.data_dir / "children").glob("*.json")):
        try:
            notes.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being written; the next look sees it whole
    return notes


def _sandbox_check_running(stage: Stage) -> list[dict[str, Any]]:
    """The noted sandbox children, once ``sandbox-checks`` is running and has started one."""
    state = agent_state(stage.db())
    if state.state != "validating" or state.cycle_id is None:
        return []
    running = [
        r
        for r in beat_runs(stage.db(), state.cycle_id)
        if r.beat_id == "sandbox-checks" and r.status == "running"
    ]
    return _child_notes(stage) if running else []


def _between_waves(stage: Stage) -> str | None:
    """The cycle id once wave 1 bakes (its rollout waiting on a timer) and wave 2 is untouched."""
    state = agent_state(stage.db())
    if state.state != "deploying" or state.cycle_id is None:
        return None
    rows = waves(stage.db(), state.cycle_id)
    rollout = [r for r in beat_runs(stage.db(), state.cycle_id) if r.beat_id == "roll-out"]
    if (
        len(rows) == 3
        and (rows[0].status, rows[1].status) == ("baking", "planned")
        and [r.status for r in rollout] == ["waiting"]
    ):
        return state.cycle_id
    return None


def _reaper_reports(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == REAPED]


def _kill_while_validating(stage: Stage) -> tuple[str, KilledWhileValidating]:
    daemon = stage.daemons[-1]
    # Polled often so the kill lands while the first check has just started.
    noted = wait_for(
        lambda: _sandbox_check_running(stage),
        timeout_s=PHASE_TIMEOUT_S,
        what="sandbox-checks to start its first check",
        interval_s=0.02,
        explain=stage.explain,
    )
    daemon.crash()
    cycle_id = str(agent_state(stage.db()).cycle_id)
    statuses = [r.status for r in beat_runs(stage.db(), cycle_id) if r.beat_id == "sandbox-checks"]
    trees = worktrees_under(stage.repo.path, stage.data_dir / "sandboxes")
    restarted = stage.start_daemon()
    report = wait_for(
        lambda: _reaper_reports(restarted.events()),
        timeout_s=60,
        what="the restarted daemon's reaper report",
        explain=stage.explain,
    )[0]
    pids = {note["pid"] for note in noted}
    return cycle_id, KilledWhileValidating(statuses, trees, pids, report)


def _kill_between_waves(stage: Stage, cycle_id: str) -> KilledBetweenWaves:
    found = wait_for(
        lambda: _between_waves(stage),
        timeout_s=PHASE_TIMEOUT_S,
        what="wave 1 to bake with wave 2 not applied",
        interval_s=0.05,
        explain=stage.explain,
    )
    assert found == cycle_id
    stage.daemons[-1].crash()
    rows = waves(stage.db(), cycle_id)
    return KilledBetweenWaves(
        [w.status for w in rows], rows[0].applied_at, stage.starts_by_target()
    )


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResumedRun]:
    workspace = tmp_path_factory.mktemp("crash-resume")
    stage = None
    db = None
    try:
        stage = build_stage(workspace, OPTIONS)
        stage.start_daemon()
        stage.await_baseline(HEALTHY_WINDOWS)
        release = commit_regression(stage.repo)
        regressed_at = datetime.now(UTC)
        stage.deploy_everywhere(release.head_sha)

        cycle_id, validating = _kill_while_validating(stage)
        between_waves = _kill_between_waves(stage, cycle_id)
        last = stage.start_daemon()
        assert stage.await_cycle_closed(regressed_at, PHASE_TIMEOUT_S) == cycle_id
        last_exit = last.stop()
        versions = stage.fleet.running_versions()
        leftovers = stage.close()

        db = open_database(stage.data_dir / "selfheal.db")
        yield ResumedRun(
            stage=stage,
            db=db,
            cycle=db.query(lambda s: repo.cycle(s, cycle_id)),
            release_head=release.head_sha,
            validating=validating,
            between_waves=between_waves,
            last_daemon_exit=last_exit,
            last_daemon_events=last.events(),
            fleet_versions=versions,
            leftovers=leftovers,
        )
    finally:
        if db is not None:
            db.dispose()
        finalize(stage, workspace)


# --- (a) killed while validating ---------------------------------------------------


def test_crash_while_validating_leaves_the_beat_running_and_its_worktrees(
    resumed: ResumedRun,
) -> None:
    assert resumed.validating.beat_statuses == ["running"]
    names = sorted(tree.name for tree in resumed.validating.worktrees)
    assert names == ["patched", "unpatched"]
    assert resumed.validating.child_pids


def test_restart_reports_reaping_the_dead_daemons_children_and_worktrees(
    resumed: ResumedRun,
) -> None:
    report = resumed.validating.reaper_report
    assert sorted(report["worktrees"]) == sorted(str(t) for t in resumed.validating.worktrees)
    reaped = {child["pid"] for child in report["child_processes"]}
    assert resumed.validating.child_pids <= reaped
    assert not any(is_alive(pid) for pid in resumed.validating.child_pids)


def test_interrupted_check_counts_as_an_attempt_and_every_beat_finished(
    resumed: ResumedRun,
) -> None:
    runs = beat_runs(resumed.db, resumed.cycle.id)
    assert {r.status for r in runs} == {"finished"}
    assert [r.attempts for r in runs if r.beat_id == "sandbox-checks"] == [2]
    assert len({(r.entry_id, r.beat_id) for r in runs}) == len(runs)


# --- (b) killed between two waves --------------------------------------------------


def test_crash_between_waves_leaves_only_the_canary_updated(resumed: ResumedRun) -> None:
    at_kill = resumed.between_waves
    assert at_kill.wave_statuses == ["baking", "planned", "planned"]
    fix = resumed.cycle.validated_version
    assert [t for t, started in at_kill.starts.items() if fix in started] == ["web-1"]


def test_every_target_started_the_fix_exactly_once(resumed: ResumedRun) -> None:
    fix = resumed.cycle.validated_version
    assert fix is not None
    healthy = resumed.stage.repo.healthy_sha
    assert resumed.stage.starts_by_target() == {
        target: [healthy, resumed.release_head, fix] for target in TARGETS
    }
    assert resumed.fleet_versions == dict.fromkeys(TARGETS, fix)
    rows = waves(resumed.db, resumed.cycle.id)
    assert [w.status for w in rows] == ["passed", "passed", "passed"]
    assert rows[0].applied_at == resumed.between_waves.canary_applied_at


# --- the cycle as a whole ------------------------------------------------------------


def test_resumed_cycle_ends_like_an_uninterrupted_one(resumed: ResumedRun) -> None:
    assert resumed.cycle.outcome == "resolved"
    log = transitions(resumed.db, resumed.cycle.id)
    assert transition_log_problems(log) == []
    assert path_of(log) == UNINTERRUPTED_PATH


def test_every_artifact_parses_with_its_model(resumed: ResumedRun) -> None:
    artifacts = read_artifacts(resumed.db, resumed.stage.data_dir / "cycles" / resumed.cycle.id)
    assert sorted(artifacts) == sorted(ARTIFACT_MODELS)
    deployment = artifacts["deployment"]
    assert isinstance(deployment, DeploymentArtifact)
    assert (deployment.outcome, deployment.version) == ("healthy", resumed.cycle.validated_version)


def test_no_worktree_sandbox_or_noted_child_is_left(resumed: ResumedRun) -> None:
    repo_path = resumed.stage.repo.path
    assert worktrees_under(repo_path, resumed.sandboxes) == []
    assert str(resumed.sandboxes) not in git(repo_path, "worktree", "list", "--porcelain")
    assert not resumed.sandboxes.exists() or list(resumed.sandboxes.iterdir()) == []
    assert _child_notes(resumed.stage) == []
    # Killed while baking, the second crash left nothing for the last start to reap.
    assert _reaper_reports(resumed.last_daemon_events) == []


def test_no_process_of_the_workspace_survives(resumed: ResumedRun) -> None:
    assert resumed.last_daemon_exit == 0
    assert resumed.leftovers == {}
