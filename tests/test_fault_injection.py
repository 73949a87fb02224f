"""Killed at named points, the daemon resumes and ends exactly like an uninterrupted run.

Two shortened demo cycles run side by side, each in its own process and
workspace (``tests/support/faults.py``). Daemons kill themselves (SIGKILL, via
``SELFHEAL_FAILPOINT``) at sampled points, and a new daemon starts on the same
data directory after every kill:

- ``resolved`` (autonomy ``auto``): after a diagnosis beat's handler returned
  but before its checkpoint; after wave 2's deploy intent was written but
  before the target was touched; after a wave 3 target was changed but before
  that was confirmed.
- ``bad-fix`` (autonomy ``approve``): SIGKILLed from outside while awaiting
  approval and again while paused (an operator pauses, resumes and approves
  through the real CLI); then, once the canary's gate failed, as the rollback
  beat starts, and after the canary was rolled back but before that was confirmed.

``benchmarks/reliability.py`` runs every kill point the sequences define, one
run each. The targets are asked from their side: every instance start is
recorded by the instance itself, and the fleet is asked over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from agent.demo.config import TARGETS
from states import machine
from tests.support.faults import MOMENTS, bundled_sequences, kill_points, run_trial
from tests.support.trial_results import TrialResult, expected_path, expected_signature

PLANS: dict[str, tuple[tuple[str, ...], bool]] = {  # scenario -> (kill points, approval)
    "resolved": (
        (
            "beat:diagnosing:rank-suspects:returned",
            "deploy:deploy:web-2:intent",
            "deploy:deploy:web-3:effect",
        ),
        False,
    ),
    "bad-fix": (
        ("beat:rolling_back:revert-targets:started", "deploy:rollback:web-1:effect"),
        True,
    ),
}
OUTSIDE_KILLS = ["SIGKILL while awaiting_approval", "SIGKILL while paused"]


def _trial(workspace: Path, scenario: str) -> TrialResult:
    points, approval = PLANS[scenario]
    return run_trial(workspace, scenario, points, approval=approval)


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TrialResult]]:
    """Every plan once, in parallel processes (a stage's fleet and load are per process)."""
    workspaces = {name: tmp_path_factory.mktemp(f"faults-{name}") for name in PLANS}
    with ProcessPoolExecutor(len(PLANS), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(_trial, ws, name) for name, ws in workspaces.items()}
        yield {name: future.result() for name, future in futures.items()}


@pytest.fixture(params=sorted(PLANS))
def trial(request: pytest.FixtureRequest, trials: dict[str, TrialResult]) -> TrialResult:
    return trials[request.param]


def _unconfirmed(report: dict[str, object] | None) -> list[tuple[str, str]]:
    intents = (report or {}).get("unconfirmed_deploys") or []
    assert isinstance(intents, list)
    return [(i["action"], i["target"]) for i in intents]


# --- the kill points ------------------------------------------------------------------------


def test_kill_points_cover_every_beat_boundary_and_every_side_effect() -> None:
    sequences = bundled_sequences()
    points = kill_points(sequences)
    names = [p.name for p in points]
    assert len(names) == len(set(names))
    beats = {(phase, b.id) for phase, spec in sequences.items() for b in spec.beats}
    assert {
        (p.name.split(":")[1], p.name.split(":")[2]) for p in points if p.kind == "beat"
    } == beats
    assert len([p for p in points if p.kind == "beat"]) == len(beats) * len(MOMENTS)
    deploys = {p.name for p in points if p.kind == "deploy"}
    assert deploys == {f"deploy:deploy:{t}:{m}" for t in TARGETS for m in ("intent", "effect")}
    rollbacks = {p.name for p in points if p.kind == "rollback"}
    assert rollbacks == {"deploy:rollback:web-1:intent", "deploy:rollback:web-1:effect"}
    rolling_back = {p.scenario for p in points if f":{machine.ROLLING_BACK}:" in p.name}
    assert rolling_back == {"bad-fix"}
    sampled = {point for points, _ in PLANS.values() for point in points}
    assert sampled <= set(names)


def test_every_armed_daemon_died_at_its_point_by_sigkill(trial: TrialResult) -> None:
    points, approval = PLANS[trial.scenario]
    assert [k.point for k in trial.kills] == [*(OUTSIDE_KILLS if approval else []), *points]
    assert [(k.reached, k.exit_code) for k in trial.kills] == [(True, -9)] * len(trial.kills)


# --- the outcome ------------------------------------------------------------------------------


def test_each_killed_run_ends_like_the_uninterrupted_one(trial: TrialResult) -> None:
    expected = expected_signature(trial.scenario, trial.approval)
    assert trial.signature() == expected
    assert trial.problems(expected) == {}


def test_every_target_ran_each_version_exactly_once(trial: TrialResult) -> None:
    expected = expected_signature(trial.scenario, trial.approval)
    assert trial.starts == expected["starts"]  # recorded by the instances as they started
    assert trial.fleet == expected["fleet"]  # what each instance answers over HTTP
    assert trial.duplicate_deploys(expected["starts"]) == 0
    keys = [(action, wave, target) for action, wave, target, _ in trial.deploy_actions]
    assert len(keys) == len(set(keys))
    assert {status for *_, status in trial.deploy_actions} == {"done"}


def test_no_artifact_is_missing_torn_or_unparseable(trial: TrialResult) -> None:
    assert trial.artifact_problems == []
    assert trial.lost_artifacts() == 0


def test_transition_log_has_no_gap_and_no_duplicate(trial: TrialResult) -> None:
    assert trial.chain_gaps == []
    assert trial.path == expected_path(trial.scenario, trial.approval)
    operator = {k for k, actor in trial.actors.items() if actor == "operator"}
    if trial.approval:
        assert operator == {
            "awaiting_approval->paused",
            "paused->awaiting_approval",
            "awaiting_approval->deploying",
        }
    else:
        assert operator == set()


# --- start-up after a kill ----------------------------------------------------------------------


def test_restart_after_a_side_effect_kill_names_the_unconfirmed_intent(
    trials: dict[str, TrialResult],
) -> None:
    resolved, bad_fix = trials["resolved"], trials["bad-fix"]
    assert [_unconfirmed(k.reaper_report) for k in resolved.kills] == [
        [],
        [("deploy", "web-2")],
        [("deploy", "web-3")],
    ]
    assert [_unconfirmed(k.reaper_report) for k in bad_fix.kills] == [
        [],
        [],
        [],
        [("rollback", "web-1")],
    ]


def test_approval_survives_kills_and_each_command_is_applied_once(
    trials: dict[str, TrialResult],
) -> None:
    approved = trials["bad-fix"]
    assert [k.state_at_exit for k in approved.kills][:2] == ["awaiting_approval", "paused"]
    assert approved.commands == [
        ("pause", "applied"),
        ("resume", "applied"),
        ("approve", "applied"),
    ]
    assert trials["resolved"].commands == []


def test_no_worktree_sandbox_child_or_process_is_left(trial: TrialResult) -> None:
    assert trial.worktrees == []
    assert trial.sandbox_entries == []
    assert trial.child_notes == []
    assert trial.leftovers == {}
