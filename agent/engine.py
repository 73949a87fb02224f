"""One tick of the agent: apply operator commands, then walk the machine until it must wait.

A tick polls telemetry at most once, and only when a source file changed
(``stat`` only), so an idle agent reads no file and runs no detector. Operator
commands are applied before every step, which keeps the CLI from ever racing
the daemon: the CLI only queues, the engine decides.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import structlog

from sequences.loading import bundled_folder, load_sequences
from sequences.schema import SequenceSpec
from states import handlers, machine, steering
from states.clock import Clock, SystemClock
from states.context import ArtifactWriter
from states.deploy.command import CommandDeployer
from states.deploy.deployers import Deployer
from states.deploy.local_fleet import LocalFleet
from states.machine import IllegalTransition
from states.progression import Runtime, Step, advance
from states.settings import Settings
from states.telemetry.ingest import has_new_telemetry, note_sources_without_files
from storage import repository as repo
from storage import retention
from storage.db import Database, open_database
from storage.repository import Session
from storage.tables import CommandRow

log = structlog.get_logger("selfheal.engine")
MAX_STEPS_PER_TICK = 500
BUDGET_PERIOD = timedelta(days=1)  # what agent.max_cycles_per_day counts over


def load_phase_sequences(settings: Settings) -> dict[str, SequenceSpec]:
    """The bundled sequences, or the operator's own folder."""
    folder = settings.agent.sequences_dir or bundled_folder()
    return load_sequences(
        folder,
        handlers=handlers.handler_names(),
        phases=machine.STATES,
        required=machine.PHASES_WITH_BEATS,
    )


def deployer_factory(settings: Settings) -> Callable[[], Deployer]:
    """Builds the configured deployer when a beat first needs it."""

    def build() -> Deployer:
        if settings.deploy.kind == "local-fleet" and settings.deploy.local_fleet is not None:
            return LocalFleet(settings.deploy.local_fleet)
        if settings.deploy.command is not None:
            return CommandDeployer(settings.deploy.command)
        raise RuntimeError(f"deployer {settings.deploy.kind!r} is not configured")

    return build


def database_path(settings: Settings) -> Path:
    """Where the agent's SQLite file lives."""
    return settings.agent.data_dir / "selfheal.db"


def open_runtime(settings: Settings, stop: threading.Event, clock: Clock | None = None) -> Runtime:
    """Everything a tick needs, checked up front (sequences, database)."""
    sequences = load_phase_sequences(settings)
    db = open_database(database_path(settings))
    clock = clock or SystemClock()
    return Runtime(
        settings=settings,
        db=db,
        clock=clock,
        sequences=sequences,
        artifacts=ArtifactWriter(db, settings.agent.data_dir, clock),
        deployer_factory=deployer_factory(settings),
        stop_requested=stop.is_set,
    )


@dataclass
class TickReport:
    """What one tick did."""

    steps: list[Step] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    polled: bool = False
    pruned: retention.Pruned = field(default_factory=retention.Pruned)

    @property
    def final_state(self) -> str:
        return self.steps[-1].state if self.steps else ""


def _apply(session: Session, rt: Runtime, command: CommandRow) -> str:
    now = rt.clock.now()
    reason = (
        f"{command.reason} (by {command.requested_by})" if command.requested_by else command.reason
    )
    if command.verb == "set-state":
        if not command.force:
            raise IllegalTransition(
                "set-state bypasses the machine's rules; repeat it with --force"
            )
        row = steering.force_state_in(
            session, now, str(command.target_state), actor=command.actor, reason=reason
        )
    else:
        row = steering.fire_in(
            session, rt.settings, now, command.verb, actor=command.actor, reason=reason
        )
    if command.verb == "approve" and row.cycle_id:
        cycle = repo.cycle(session, row.cycle_id)
        cycle.approved_by = command.requested_by or command.actor
        session.add(cycle)
    return f"{row.source} -> {row.dest}"


def apply_commands(rt: Runtime) -> list[str]:
    """Apply every queued operator command in order; illegal ones are refused with the reason."""
    results = []
    for queued in rt.db.query(repo.queued_commands):

        def handle(session: Session, command_id: int = queued.id or 0) -> str:
            command = repo.command(session, command_id)
            if command is None or command.status != "queued":
                return ""
            try:
                command.result, command.status = _apply(session, rt, command), "applied"
            except IllegalTransition as exc:
                command.result, command.status = str(exc), "refused"
            command.applied_at = rt.clock.now()
            session.add(command)
            return f"{command.verb}: {command.status}: {command.result}"

        outcome = rt.db.transact(handle)
        if outcome:
            log.info("operator command", result=outcome)
            results.append(outcome)
    return results


def tick(rt: Runtime) -> TickReport:
    """Run the machine until it waits, is blocked, or is back in idle after one poll."""
    report = TickReport()
    for _ in range(MAX_STEPS_PER_TICK):
        if rt.stop_requested():
            break
        report.commands += apply_commands(rt)
        step = advance(rt)
        if step.kind == "idle":
            note_sources_without_files(rt.settings, rt.db, rt.clock.now())
            if report.polled or not has_new_telemetry(rt.settings, rt.db):
                report.steps.append(step)
                break
            steering.fire(rt.db, rt.settings, rt.clock, "poll", reason="new telemetry")
            report.polled = True
            continue
        report.steps.append(step)
        if step.kind in ("waiting", "blocked"):
            break
    if any(s.kind == "transitioned" and s.state == machine.IDLE for s in report.steps):
        report.pruned = prune_closed_cycles(rt)
    return report


def prune_closed_cycles(rt: Runtime) -> retention.Pruned:
    """Drop closed cycles beyond ``agent.keep_cycles`` with their artifact directories.

    Cycles opened in the last day are kept whatever their number: the daily
    budget counts them, and diagnosis reads the deployments they made.
    """
    keep = rt.settings.agent.keep_cycles
    opened_before = rt.clock.now() - BUDGET_PERIOD
    pruned = retention.prune_cycles(
        rt.db, rt.settings.agent.data_dir / "cycles", keep, opened_before
    )
    if pruned:
        log.info(
            "pruned closed cycles",
            cycles=pruned.cycles,
            directories=pruned.directories,
            anomalies=pruned.anomalies,
            keep=keep,
        )
    return pruned


def close_runtime(rt: Runtime) -> None:
    """Release the database."""
    rt.db.dispose()


def open_readonly(settings: Settings) -> Database:
    """The database for status-like commands (no sequences, no deployer)."""
    return open_database(database_path(settings))
