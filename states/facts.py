"""Reading the guards' facts from persisted rows.

Everything a guard decides on is derived here from the database, never from
memory, which is what makes a restarted agent take the same branch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from states.detect.judgement import SEVERITY_ORDER
from states.machine import Facts
from states.settings import Settings
from storage import deployment_store
from storage import repository as repo
from storage.repository import Session
from storage.tables import AgentStateRow, AnomalyRow


def incident_candidate(session: Session) -> AnomalyRow | None:
    """The open actionable anomaly not yet handled by a cycle, worst first (then oldest)."""
    pending = [a for a in repo.open_anomalies(session) if a.actionable and a.cycle_id is None]
    pending.sort(key=lambda a: (-SEVERITY_ORDER.get(a.severity, -1), a.onset))
    return pending[0] if pending else None


def in_cooldown(session: Session, settings: Settings, component: str, now: datetime) -> bool:
    """A cycle for ``component`` closed less than the cooldown ago."""
    last = repo.last_closed_cycle(session, component)
    if last is None or last.closed_at is None:
        return False
    return now - last.closed_at < timedelta(seconds=settings.agent.cooldown_s)


def load_facts(session: Session, settings: Settings, state: AgentStateRow, now: datetime) -> Facts:
    """Every fact the guards may read, for the agent's current position."""
    candidate = incident_candidate(session)
    budget_used = repo.cycles_opened_since(session, now - timedelta(days=1))
    base = Facts(
        actionable=candidate is not None,
        in_cooldown=candidate is not None
        and in_cooldown(session, settings, candidate.component, now),
        budget_left=budget_used < settings.agent.max_cycles_per_day,
        autonomy=settings.agent.autonomy,
        paused_from=state.paused_from,
    )
    if state.cycle_id is None:
        return base
    cycle = repo.cycle(session, state.cycle_id)
    deployed = any(
        a.status == "done" for a in deployment_store.deploy_actions(session, cycle.id, "deploy")
    )
    return Facts(
        actionable=base.actionable,
        in_cooldown=base.in_cooldown,
        budget_left=base.budget_left,
        cause_found=cycle.cause_found,
        candidate_ready=cycle.candidate_ready,
        validation_passed=cycle.validation_passed,
        next_candidate_left=cycle.candidate_index < cycle.candidates_total,
        autonomy=settings.agent.autonomy,
        pattern_confident=cycle.pattern_confidence >= settings.agent.pattern_confidence,
        gate_passed=cycle.gate_passed is True,
        deployed_anything=deployed,
        paused_from=state.paused_from,
    )
