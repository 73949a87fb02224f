"""Walking a phase's beats with a checkpoint before every next step.

Per beat and phase visit there is one ``beat_run`` row: status, attempts,
start and finish times, ``not_before`` (a durable timer for retries and
waits), the last error and the output. A finished beat is never run again;
a beat found ``running`` after a restart was interrupted, counts as an
attempt, and runs again (handlers are idempotent). When every beat has
finished, the phase's completion trigger moves the machine on.

An attempt found ``running`` whose process died under it (a kill, a power
cut) was not failed by its handler: it counts as an attempt but never uses up
the beat's retries by itself; only ``MAX_KILLED_ATTEMPTS`` deaths in a row
make the beat give up, so a beat that kills its process every time cannot
loop forever. Each attempt is claimed by its process (``storage.claims``),
which is how a restart tells such a death from an attempt its own process
abandoned (an interrupt that escaped the handler), which counts as a failure.

A wait is decided on the monotonic clock, not by comparing ``not_before``
with wall time: the checkpoint also stores the wait as a countdown
(``Countdown``), so a wall clock stepped by hours neither cuts a wait
short nor stretches it; ``not_before`` stays as the wall-time estimate people
read. After a reboot the monotonic clock starts afresh, so a wait from before
it is over and the beat checks again what it waits for.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from sequences.schema import BeatSpec, SequenceSpec
from states import failpoints, machine, steering
from states.clock import Clock, Countdown, remaining_s, start_countdown
from states.context import ArtifactWriter, BeatContext
from states.deploy.deployers import Deployer
from states.execution import Outcome, Status, execute_beat_once
from states.registry import handler
from states.settings import Settings
from states.telemetry.ingest_memory import IngestMemory
from storage import claims, timers
from storage import repository as repo
from storage.db import Database
from storage.repository import Session
from storage.tables import BeatRunRow

DONE = ("finished", "skipped")
MAX_KILLED_ATTEMPTS = 3
# This process, as the owner of the attempts it starts (pids are reused, tokens are not).
PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
log = structlog.get_logger("selfheal.progression")


@dataclass
class Runtime:
    """The collaborators every step needs, built once by the composition root."""

    settings: Settings
    db: Database
    clock: Clock
    sequences: dict[str, SequenceSpec]
    artifacts: ArtifactWriter
    deployer_factory: Callable[[], Deployer]
    stop_requested: Callable[[], bool]
    telemetry: IngestMemory = field(default_factory=IngestMemory)  # what polls keep in memory


@dataclass(frozen=True)
class Step:
    """What one call to ``advance`` did."""

    kind: str  # idle | blocked | waiting | ran | transitioned
    state: str
    beat: str = ""
    detail: str = ""
    until: datetime | None = None


def _pending(spec: SequenceSpec, runs: dict[str, BeatRunRow]) -> BeatSpec | None:
    for beat in spec.beats:
        run = runs.get(beat.id)
        if run is None or run.status not in DONE:
            return beat
    return None


def _start(
    session: Session, rt: Runtime, beat: BeatSpec, phase: str, entry_id: int, cycle_id: str | None
) -> tuple[int, bool, dict[str, Any], str]:
    """Mark the beat running; returns (attempt, waited, previous output, why to give up or "")."""
    run = repo.beat_run(session, entry_id=entry_id, beat_id=beat.id, phase=phase, cycle_id=cycle_id)
    waited = run.status == "waiting"
    interrupted = run.status == "running"
    run.attempts += 1  # a wait resets attempts to 0, so the resumed call is attempt 1
    run.status = "running"
    run.started_at = now = rt.clock.now()
    session.add(run)
    key = beat_key(entry_id, beat.id)
    previous_claim = claims.claim(session, key)
    kills = previous_claim.kills if previous_claim is not None else 0
    give_up = ""
    if interrupted and previous_claim is not None and previous_claim.owner != PROCESS:
        kills += 1
        if kills > MAX_KILLED_ATTEMPTS:
            give_up = f"its process died {kills} times while running it; giving up"
    elif interrupted and run.attempts > beat.retries + 1:
        give_up = f"interrupted {run.attempts - 1} times; giving up"
    claims.set_claim(session, key, owner=PROCESS, kills=kills, now=now)
    return run.attempts, waited, dict(run.output), give_up


def _apply_cycle_updates(session: Session, cycle_id: str | None, updates: dict[str, Any]) -> None:
    if not updates or cycle_id is None:
        return
    cycle = repo.cycle(session, cycle_id)
    for key, value in updates.items():
        if key == "summary":
            repo.summary_update(cycle, **value)
        elif not hasattr(cycle, key):
            raise ValueError(f"cycle has no fact column {key!r}")
        else:
            setattr(cycle, key, value)
    session.add(cycle)


def _checkpoint(
    session: Session,
    rt: Runtime,
    beat: BeatSpec,
    entry_id: int,
    cycle_id: str | None,
    outcome: Outcome,
) -> None:
    now = rt.clock.now()
    state = repo.agent_state(session, now)
    if state.entry_id != entry_id:
        return  # an operator moved the machine while the beat ran; its result belongs to nobody
    run = repo.beat_run(
        session, entry_id=entry_id, beat_id=beat.id, phase=state.state, cycle_id=cycle_id
    )
    run.error = outcome.error
    run.not_before = outcome.not_before
    claims.release(session, beat_key(entry_id, beat.id))
    _store_wait(session, rt, beat_key(entry_id, beat.id), outcome.not_before, now)
    if outcome.status in (Status.FINISHED, Status.WAITING):
        run.output = outcome.output
        _apply_cycle_updates(session, cycle_id, outcome.cycle_updates)
    if outcome.status is Status.FINISHED:
        run.status, run.finished_at = "finished", now
    elif outcome.status is Status.WAITING:
        run.status, run.attempts = "waiting", 0
    elif outcome.status is Status.RETRY:
        run.status = "retry"
    else:
        _fail(session, rt, beat, run, now, outcome.error)
    session.add(run)


def beat_key(entry_id: int, beat_id: str) -> str:
    """One beat within one phase visit, as its countdown and its claim are keyed."""
    return f"beat:{entry_id}:{beat_id}"


def _store_wait(
    session: Session, rt: Runtime, key: str, not_before: datetime | None, now: datetime
) -> None:
    if not_before is None:
        timers.drop_timer(session, key)
        return
    countdown = start_countdown(rt.clock, (not_before - now).total_seconds())
    timers.set_timer(
        session,
        key,
        duration_s=countdown.duration_s,
        started_mono=countdown.started_mono,
        boot_id=countdown.boot_id,
        now=now,
    )


def _wait_left_s(rt: Runtime, key: str, not_before: datetime, now: datetime) -> float:
    """Seconds the beat still waits, on its countdown (wall time for a wait stored without one).

    A countdown from another boot is over: the beat is called at once and checks
    again what it waits for (a bake restarts its own countdown in full).
    """
    row = rt.db.query(lambda s: timers.timer(s, key))
    if row is None:
        return (not_before - now).total_seconds()
    left = remaining_s(Countdown(row.duration_s, row.started_mono, row.boot_id), rt.clock)
    return 0.0 if left is None else left


def _fail(
    session: Session, rt: Runtime, beat: BeatSpec, run: BeatRunRow, now: datetime, error: str
) -> None:
    run.finished_at = now
    reason = f"beat {beat.id!r} failed: {error}"
    if beat.on_error == "continue":
        run.status = "skipped"
        return
    run.status = "failed"
    if beat.on_error == "escalate":
        if run.cycle_id is not None:
            cycle = repo.cycle(session, run.cycle_id)
            cycle.escalated, cycle.escalation_reason = True, reason
            session.add(cycle)
        steering.fire_in(session, rt.settings, now, "escalate", actor="agent", reason=reason)
    else:
        steering.fire_in(session, rt.settings, now, "fail", actor="agent", reason=reason)


def _complete_phase(session: Session, rt: Runtime, phase: str) -> str:
    trigger = machine.COMPLETION_TRIGGER[phase]
    row = steering.fire_in(
        session, rt.settings, rt.clock.now(), trigger, actor="agent", reason="phase complete"
    )
    return row.dest


def advance(rt: Runtime) -> Step:
    """Run the next step of the current phase, or report why there is none."""
    now = rt.clock.now()
    state = rt.db.query(lambda s: repo.agent_state(s, now))
    if state.state == machine.IDLE:
        return Step("idle", state.state)
    spec = rt.sequences.get(state.state)
    if spec is None:
        return Step("blocked", state.state, detail="waiting for an operator")
    runs = rt.db.query(lambda s: repo.beat_runs(s, state.entry_id))
    beat = _pending(spec, runs)
    if beat is None:
        dest = rt.db.transact(lambda s: _complete_phase(s, rt, state.state))
        return Step("transitioned", dest, detail=f"{state.state} complete")
    run = runs.get(beat.id)
    if run is not None and run.not_before is not None:
        left = _wait_left_s(rt, beat_key(state.entry_id, beat.id), run.not_before, now)
        if left > 0:
            return Step(
                "waiting",
                state.state,
                beat.id,
                detail=str(run.output.get("wait_reason", run.error)),
                until=now + timedelta(seconds=left),
            )
    return _run_beat(rt, spec, beat, state.entry_id, state.cycle_id, runs)


def _run_beat(
    rt: Runtime,
    spec: SequenceSpec,
    beat: BeatSpec,
    entry_id: int,
    cycle_id: str | None,
    runs: dict[str, BeatRunRow],
) -> Step:
    attempt, waited, previous, give_up = rt.db.transact(
        lambda s: _start(s, rt, beat, spec.phase, entry_id, cycle_id)
    )
    ctx = BeatContext(
        settings=rt.settings,
        db=rt.db,
        clock=rt.clock,
        artifacts=rt.artifacts,
        deployer_factory=rt.deployer_factory,
        phase=spec.phase,
        beat_id=beat.id,
        cycle_id=cycle_id,
        entry_id=entry_id,
        attempt=attempt,
        deadline=rt.clock.monotonic() + beat.timeout_s,
        outputs={k: dict(v.output) for k, v in runs.items() if v.status == "finished"},
        previous_output=previous,
        waited=waited,
        stop_requested=rt.stop_requested,
        telemetry=rt.telemetry,
    )
    with structlog.contextvars.bound_contextvars(cycle_id=cycle_id, phase=spec.phase, beat=beat.id):
        if give_up:
            outcome = Outcome(Status.FAILED, error=give_up)
        else:
            log.info("beat started", attempt=attempt, resumed_after_wait=waited)
            failpoints.hit(f"beat:{spec.phase}:{beat.id}:started")
            outcome = execute_beat_once(beat, handler(beat.handler), ctx)
            failpoints.hit(f"beat:{spec.phase}:{beat.id}:returned")
        rt.db.transact(lambda s: _checkpoint(s, rt, beat, entry_id, cycle_id, outcome))
        failpoints.hit(f"beat:{spec.phase}:{beat.id}:checkpointed")
        log.info(
            "beat " + outcome.status.value,
            error=outcome.error or None,
            not_before=outcome.not_before,
        )
    return Step("ran", spec.phase, beat.id, detail=outcome.status.value, until=outcome.not_before)
