"""Moving the machine: every transition, by the agent or an operator, goes through here.

A transition is decided by ``machine.next_state`` on facts read in the same
transaction that then stores the transition row and the new state, so the
log and the state can never disagree. Opening and leaving a cycle happen in
that same transaction too.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from states import machine
from states.clock import Clock
from states.facts import incident_candidate, load_facts
from states.machine import IllegalTransition
from states.settings import Settings
from storage import repository as repo
from storage.db import Database
from storage.repository import Session
from storage.tables import CycleRow, TransitionRow


def new_cycle_id(now: datetime, component: str) -> str:
    """Sortable, readable and unique: time, component, a little randomness."""
    return f"{now:%Y%m%d-%H%M%S}-{component}-{secrets.token_hex(2)}"


def _open_cycle(session: Session, now: datetime) -> str:
    anomaly = incident_candidate(session)
    if anomaly is None:
        raise IllegalTransition("no actionable anomaly to open a cycle for")
    cycle_id = new_cycle_id(now, anomaly.component)
    session.add(
        CycleRow(
            id=cycle_id,
            opened_at=now,
            component=anomaly.component,
            category=anomaly.category,
            metric=anomaly.metric,
            summary={"opened_by_anomaly": anomaly.fingerprint, "severity": anomaly.severity},
        )
    )
    for other in repo.open_anomalies(session, anomaly.component):
        if other.cycle_id is None:
            other.cycle_id = cycle_id
            session.add(other)
    session.flush()
    return cycle_id


def _move(
    session: Session,
    *,
    dest: str,
    trigger: str,
    actor: str,
    reason: str,
    cycle_id: str | None,
    now: datetime,
) -> TransitionRow:
    """Store the transition; the state keeps the cycle unless it returns to idle."""
    source = repo.agent_state(session, now).state
    return repo.record_transition(
        session,
        source=source,
        dest=dest,
        trigger=trigger,
        actor=actor,
        reason=reason,
        cycle_id=cycle_id,
        state_cycle_id=None if dest == machine.IDLE else cycle_id,
        paused_from=source if dest == machine.PAUSED else None,
        now=now,
    )


def fire_in(
    session: Session, settings: Settings, now: datetime, trigger: str, *, actor: str, reason: str
) -> TransitionRow:
    """Fire ``trigger`` inside the caller's transaction; raises IllegalTransition."""
    state = repo.agent_state(session, now)
    facts = load_facts(session, settings, state, now)
    dest = machine.next_state(state.state, trigger, facts)
    cycle_id = state.cycle_id
    if state.state == machine.DETECTING and dest == machine.DIAGNOSING:
        cycle_id = _open_cycle(session, now)
    return _move(
        session, dest=dest, trigger=trigger, actor=actor, reason=reason, cycle_id=cycle_id, now=now
    )


def fire(
    db: Database,
    settings: Settings,
    clock: Clock,
    trigger: str,
    *,
    actor: str = "agent",
    reason: str = "",
) -> TransitionRow:
    """Fire ``trigger`` in its own transaction."""
    now = clock.now()
    return db.transact(lambda s: fire_in(s, settings, now, trigger, actor=actor, reason=reason))


def force_state_in(
    session: Session, now: datetime, dest: str, *, actor: str, reason: str
) -> TransitionRow:
    """Put the machine in ``dest`` regardless of the table (operator's ``set-state --force``)."""
    if dest not in machine.STATES or dest == machine.PAUSED:
        raise IllegalTransition(
            f"cannot set state {dest!r}: expected one of {', '.join(s for s in machine.STATES if s != 'paused')}"
        )
    state = repo.agent_state(session, now)
    keeps_cycle = dest in machine.CYCLE_STATES or dest == machine.FAILED
    cycle_id = state.cycle_id if keeps_cycle else None
    if dest in machine.CYCLE_STATES and cycle_id is None:
        raise IllegalTransition(
            f"cannot set state {dest!r}: there is no open cycle for it to work on"
        )
    if state.cycle_id is not None and not keeps_cycle:
        abandoned = repo.cycle(session, state.cycle_id)
        abandoned.closed_at, abandoned.outcome = now, "abandoned"
        repo.summary_update(abandoned, abandoned_by=actor, abandoned_reason=reason)
        session.add(abandoned)
    return repo.record_transition(
        session,
        source=state.state,
        dest=dest,
        trigger="set_state",
        actor=actor,
        reason=reason,
        cycle_id=state.cycle_id,
        state_cycle_id=cycle_id,
        paused_from=None,
        now=now,
    )
