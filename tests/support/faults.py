"""Fault injection on the whole loop: a shortened demo cycle whose daemon is killed at named points.

A trial builds the demo's stage (repository, four shop instances on
127.0.0.1, load), lets an unarmed daemon learn a healthy baseline, stops it,
releases the regression, then starts daemons armed with ``SELFHEAL_FAILPOINT``
one after another: each kills itself with SIGKILL on reaching its point
(``states.failpoints``) and the next starts on the same data directory. A last,
unarmed daemon finishes the cycle. With ``approval`` the agent runs with
``autonomy = "approve"`` and is SIGKILLed from outside while it waits for the
operator, and again while paused; an operator then resumes and approves
through the CLI, under the first armed daemon.

The trial then reads back what an operator could check from the outside: the
targets' own start records (``start_recorder.py``) and HTTP answers, the
artifact files against their recorded hashes, the transition log, and the
workspace's processes, worktrees and sandboxes, as a ``TrialResult``
(``tests/support/trial_results.py``), which compares it with what the
uninterrupted scenario ends in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import col, select

from agent.demo.config import TARGETS, DemoOptions
from agent.demo.load import RequestMix
from agent.demo.workspace import commit_regression
from sequences.loading import bundled_folder, load_sequences
from sequences.schema import SequenceSpec
from states import handlers, machine
from states.artifacts import DeploymentArtifact
from states.deploy.rollout import plan_waves
from states.failpoints import ENV_VAR
from states.git import worktrees_under
from storage import deployment_store
from storage import repository as repo
from storage.tables import CommandRow
from tests.support.cli import override
from tests.support.daemon import Daemon
from tests.support.polling import wait_for
from tests.support.records import agent_state, path_of, transitions, waves
from tests.support.stage import Stage, build_stage, finalize
from tests.support.trial_results import Kill, TrialResult, artifact_check, chain_gaps

SCENARIOS = ("resolved", "bad-fix")
HEALTHY_WINDOWS = 5
OPTIONS = DemoOptions(benchmark_repeats=1, bake_s=2.0, rate_per_s=40.0)
PHASE_TIMEOUT_S = 240.0
DEMO_WAVES = (25.0, 50.0, 100.0)  # the demo config's [deploy] waves
MOMENTS = ("started", "returned", "checkpointed")
REAPED = "reaped what a previous run left behind"
OPERATOR = "alice"

# --- kill points -----------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """One failpoint and the scenario whose run reaches it."""

    scenario: str
    name: str

    @property
    def kind(self) -> str:
        """``beat``, ``deploy`` or ``rollback``."""
        head, action = self.name.split(":")[:2]
        return action if head == "deploy" else head


def bundled_sequences() -> dict[str, SequenceSpec]:
    """The phases as the daemon loads them."""
    return load_sequences(
        bundled_folder(),
        handlers=handlers.handler_names(),
        phases=machine.STATES,
        required=machine.PHASES_WITH_BEATS,
    )


def kill_points(
    sequences: dict[str, SequenceSpec],
    targets: Sequence[str] = TARGETS,
    wave_percentages: Sequence[float] = DEMO_WAVES,
) -> list[KillPoint]:
    """Every beat boundary of every phase, and every deploy and rollback side effect.

    The ``resolved`` run reaches every phase but ``rolling_back`` and deploys to
    every target; the ``bad-fix`` run rolls back, and only the failed canary's
    targets, so its points are the rollback phase's beats and those targets.
    """
    points = [
        KillPoint("resolved", f"beat:{phase}:{beat.id}:{moment}")
        for phase, spec in sequences.items()
        if phase != machine.ROLLING_BACK
        for beat in spec.beats
        for moment in MOMENTS
    ]
    points += [
        KillPoint("resolved", f"deploy:deploy:{target}:{moment}")
        for target in targets
        for moment in ("intent", "effect")
    ]
    points += [
        KillPoint("bad-fix", f"beat:{machine.ROLLING_BACK}:{beat.id}:{moment}")
        for beat in sequences[machine.ROLLING_BACK].beats
        for moment in MOMENTS
    ]
    canary = plan_waves(list(targets), list(wave_percentages))[0]
    points += [
        KillPoint("bad-fix", f"deploy:rollback:{target}:{moment}")
        for target in canary
        for moment in ("intent", "effect")
    ]
    return points


def _roles(stage: Stage, release: str, fix: str | None) -> Callable[[str | None], str]:
    names = {stage.repo.healthy_sha: "healthy", release: "release"}
    if fix:
        names[fix] = "fix"
    return lambda version: names.get(version or "", str(version))


def _child_notes(stage: Stage) -> list[str]:
    return sorted(p.name for p in (stage.data_dir / "children").glob("*.json"))


def _reaper_report(daemon: Daemon) -> dict[str, Any] | None:
    reports = [e for e in daemon.events() if e.get("event") == REAPED]
    return reports[0] if reports else None


# --- running a trial ---------------------------------------------------------------------


def _run_armed(stage: Stage, point: str, since: datetime, timeout_s: float) -> Kill:
    return _await_armed(stage, stage.start_daemon({ENV_VAR: point}), point, since, timeout_s)


def _await_armed(
    stage: Stage, daemon: Daemon, point: str, since: datetime, timeout_s: float
) -> Kill:
    """Wait for ``daemon`` to kill itself at ``point`` (or the cycle to close without it)."""
    wait_for(
        lambda: not daemon.running() or stage.cycle_done(since),
        timeout_s=timeout_s,
        what=f"the daemon armed with {point} to die or the cycle to close",
        interval_s=0.05,
        explain=stage.explain,
    )
    reached = not daemon.running()
    if not reached:
        daemon.stop()
    return Kill(
        point, reached, daemon.returncode, agent_state(stage.db()).state, str(daemon.log_path)
    )


def _state_is(stage: Stage, state: str) -> bool:
    return agent_state(stage.db()).state == state


def _started(daemon: Daemon) -> bool:
    return any(e.get("event") == "daemon started" for e in daemon.events())


def _crash_in(stage: Stage, state: str, timeout_s: float) -> Kill:
    """SIGKILL the running daemon once the machine is in ``state``."""
    daemon = stage.daemons[-1]
    wait_for(
        lambda: _state_is(stage, state),
        timeout_s=timeout_s,
        what=f"the machine to reach {state}",
        explain=stage.explain,
    )
    daemon.crash()
    state_now = agent_state(stage.db()).state
    return Kill(f"SIGKILL while {state}", True, daemon.returncode, state_now, str(daemon.log_path))


def _restart_and_command(
    stage: Stage, verb: str, until: str, timeout_s: float, env: dict[str, str] | None = None
) -> None:
    """Start a daemon, and once it runs, queue ``verb``; wait for the machine to reach ``until``."""
    daemon = stage.start_daemon(env)
    wait_for(lambda: _started(daemon), timeout_s=60, what="the restarted daemon to run")
    override(stage.config, verb, by=OPERATOR, reason=f"fault-injection trial: {verb}")
    wait_for(
        lambda: _state_is(stage, until),
        timeout_s=timeout_s,
        what=f"{verb} to bring the machine to {until}",
        explain=stage.explain,
    )


def _operator_approves(stage: Stage, first_point: str | None, timeout_s: float) -> list[Kill]:
    """Killed while awaiting approval and while paused; resumed and approved under a daemon
    armed with ``first_point`` (if any)."""
    stage.start_daemon()
    kills = [_crash_in(stage, machine.AWAITING_APPROVAL, timeout_s)]
    _restart_and_command(stage, "pause", machine.PAUSED, timeout_s)
    kills.append(_crash_in(stage, machine.PAUSED, timeout_s))
    armed = {ENV_VAR: first_point} if first_point else None
    _restart_and_command(stage, "resume", machine.AWAITING_APPROVAL, timeout_s, armed)
    override(stage.config, "approve", by=OPERATOR, reason="fault-injection trial: approve")
    return kills


def run_trial(
    workspace: Path,
    scenario: str,
    points: Sequence[str] = (),
    *,
    approval: bool = False,
    timeout_s: float = PHASE_TIMEOUT_S,
) -> TrialResult:
    """One shortened demo cycle in ``workspace``, killed at each of ``points`` in turn."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")
    started = time.monotonic()
    stage = None
    try:
        stage = build_stage(workspace, OPTIONS, autonomy="approve" if approval else "auto")
        baseline = stage.start_daemon()
        stage.await_baseline(HEALTHY_WINDOWS)
        baseline.stop()
        release = commit_regression(stage.repo)
        since = datetime.now(UTC)
        stage.deploy_everywhere(release.head_sha)
        if scenario == "bad-fix":
            stage.load.set_mix(RequestMix(legacy_bundle=2))
        kills: list[Kill] = []
        remaining = list(points)
        if approval:
            kills += _operator_approves(stage, remaining[0] if remaining else None, timeout_s)
            if remaining:
                kills.append(
                    _await_armed(stage, stage.daemons[-1], remaining.pop(0), since, timeout_s)
                )
        kills += [_run_armed(stage, point, since, timeout_s) for point in remaining]
        if not stage.daemons[-1].running():
            stage.start_daemon()
        cycle_id = stage.await_cycle_closed(since, timeout_s)
        stage.daemons[-1].stop()
        _attach_reaper_reports(stage, kills)
        result = _read_back(stage, scenario, list(points), kills, cycle_id, release.head_sha)
        result.approval = approval
        result.leftovers = stage.close()
        result.seconds = round(time.monotonic() - started, 1)
        return result
    finally:
        finalize(stage, workspace)


def _attach_reaper_reports(stage: Stage, kills: list[Kill]) -> None:
    """Each kill's report is the one of the daemon started right after the killed one."""
    by_log = {str(d.log_path): d for d in stage.daemons}
    for kill in kills:
        position = list(by_log).index(kill.daemon_log)
        following = stage.daemons[position + 1 : position + 2]
        kill.reaper_report = _reaper_report(following[0]) if following else None


def _read_back(
    stage: Stage,
    scenario: str,
    points: list[str],
    kills: list[Kill],
    cycle_id: str,
    release: str,
) -> TrialResult:
    db = stage.db()
    cycle = db.query(lambda s: repo.cycle(s, cycle_id))
    role = _roles(stage, release, cycle.validated_version)
    log = transitions(db, cycle_id)
    kinds, problems = artifact_check(db, stage.data_dir / "cycles" / cycle_id)
    patterns = db.query(lambda s: repo.pattern(s, cycle.signature)) if cycle.signature else None
    deployment = stage.data_dir / "cycles" / cycle_id / "deployment.json"
    sandboxes = stage.data_dir / "sandboxes"
    return TrialResult(
        scenario=scenario,
        points=points,
        kills=kills,
        cycle_id=cycle_id,
        outcome=cycle.outcome,
        path=path_of(log),
        chain_gaps=chain_gaps(db),
        actors={f"{t.source}->{t.dest}": t.actor for t in log},
        wave_statuses=[w.status for w in waves(db, cycle_id)],
        deploy_actions=[
            (a.action, a.wave, a.target, a.status)
            for a in db.query(lambda s: deployment_store.deploy_actions(s, cycle_id))
        ],
        starts={t: [role(v) for v in vs] for t, vs in stage.starts_by_target().items()},
        fleet={t: role(v) for t, v in stage.fleet.running_versions().items()},
        deployment_outcome=_deployment_outcome(deployment),
        pattern=(
            (str(cycle.outcome), patterns.successes, patterns.failures)
            if patterns is not None
            else None
        ),
        artifact_kinds=kinds,
        artifact_problems=problems,
        commands=[
            (c.verb, c.status)
            for c in db.query(
                lambda s: list(s.exec(select(CommandRow).order_by(col(CommandRow.id))))
            )
        ],
        worktrees=[str(t) for t in worktrees_under(stage.repo.path, sandboxes)],
        sandbox_entries=sorted(p.name for p in sandboxes.iterdir()) if sandboxes.exists() else [],
        child_notes=_child_notes(stage),
        leftovers={},
        seconds=0.0,
        daemon_logs=[str(d.log_path) for d in stage.daemons],
    )


def _deployment_outcome(path: Path) -> str | None:
    try:
        return DeploymentArtifact.model_validate_json(path.read_bytes()).outcome
    except (OSError, ValidationError):
        return None
