"""The healing loop as one explicit state machine.

The table below is the whole control flow of selfheal. ``transitions`` checks
it (which trigger is legal where, which guard picks the destination); the
database stays the source of truth, so a machine is rebuilt from the stored
state for every decision and never holds state of its own. Guards are plain
functions of ``Facts``, which are read from persisted rows, so a restarted
agent takes the same branch as the one that stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transitions import Machine, MachineError

IDLE = "idle"
INGESTING = "ingesting"
DETECTING = "detecting"
DIAGNOSING = "diagnosing"
FIXING = "fixing"
VALIDATING = "validating"
AWAITING_APPROVAL = "awaiting_approval"
DEPLOYING = "deploying"
ROLLING_BACK = "rolling_back"
LEARNING = "learning"
PAUSED = "paused"
FAILED = "failed"

LOOP_STATES = (
    IDLE,
    INGESTING,
    DETECTING,
    DIAGNOSING,
    FIXING,
    VALIDATING,
    AWAITING_APPROVAL,
    DEPLOYING,
    ROLLING_BACK,
    LEARNING,
)
STATES = (*LOOP_STATES, PAUSED, FAILED)
CYCLE_STATES = (
    DIAGNOSING,
    FIXING,
    VALIDATING,
    AWAITING_APPROVAL,
    DEPLOYING,
    ROLLING_BACK,
    LEARNING,
)
PHASES_WITH_BEATS = (
    INGESTING,
    DETECTING,
    DIAGNOSING,
    FIXING,
    VALIDATING,
    DEPLOYING,
    ROLLING_BACK,
    LEARNING,
)

# The trigger the engine fires when every beat of a phase has finished.
COMPLETION_TRIGGER = {
    INGESTING: "ingested",
    DETECTING: "detected",
    DIAGNOSING: "diagnosed",
    FIXING: "fixed",
    VALIDATING: "validated",
    DEPLOYING: "deployed",
    ROLLING_BACK: "rolled_back",
    LEARNING: "learned",
}
OPERATOR_TRIGGERS = ("pause", "resume", "approve", "reject", "abort", "rollback")


class IllegalTransition(Exception):
    """The trigger is not allowed from the current state; the message says why."""


@dataclass(frozen=True)
class Facts:
    """The persisted facts the guards decide on."""

    actionable: bool = False
    in_cooldown: bool = False
    budget_left: bool = True
    cause_found: bool = False
    candidate_ready: bool = False
    validation_passed: bool = False
    next_candidate_left: bool = False
    autonomy: str = "auto"
    pattern_confident: bool = False
    gate_passed: bool = False
    deployed_anything: bool = False
    paused_from: str | None = None


# --- guards ------------------------------------------------------------------


def incident_opens(facts: Facts) -> bool:
    """An actionable anomaly, outside its component's cooldown, with budget left today."""
    return facts.actionable and not facts.in_cooldown and facts.budget_left


def cause_found(facts: Facts) -> bool:
    """Diagnosis named a suspect with enough confidence."""
    return facts.cause_found


def candidate_ready(facts: Facts) -> bool:
    """Fixing produced a candidate to validate."""
    return facts.candidate_ready


def deploys_without_approval(facts: Facts) -> bool:
    """Validated, and autonomy allows it: ``auto``, or ``approve`` lifted by a confident pattern."""
    if not facts.validation_passed:
        return False
    return facts.autonomy == "auto" or (facts.autonomy == "approve" and facts.pattern_confident)


def needs_approval(facts: Facts) -> bool:
    """Validated, but an operator must approve the rollout."""
    return facts.validation_passed and facts.autonomy == "approve" and not facts.pattern_confident


def tries_next_candidate(facts: Facts) -> bool:
    """Validation failed and diagnosis left another candidate to try."""
    return not facts.validation_passed and facts.next_candidate_left


def gate_passed(facts: Facts) -> bool:
    """Every wave's health gate passed."""
    return facts.gate_passed


def has_deployed(facts: Facts) -> bool:
    """Some target was changed in this cycle, so there is something to roll back."""
    return facts.deployed_anything


def _resumes_to(state: str) -> Callable[[Facts], bool]:
    def guard(facts: Facts) -> bool:
        return facts.paused_from == state

    guard.__name__ = f"paused_from_{state}"
    return guard


def _t(
    trigger: str, source: str | list[str], dest: str, *conditions: Callable[[Facts], bool]
) -> dict[str, Any]:
    return {"trigger": trigger, "source": source, "dest": dest, "conditions": list(conditions)}


TRANSITIONS: list[dict[str, Any]] = [
    _t("poll", IDLE, INGESTING),
    _t("ingested", INGESTING, DETECTING),
    _t("detected", DETECTING, DIAGNOSING, incident_opens),
    _t("detected", DETECTING, IDLE),
    _t("diagnosed", DIAGNOSING, FIXING, cause_found),
    _t("diagnosed", DIAGNOSING, LEARNING),
    _t("fixed", FIXING, VALIDATING, candidate_ready),
    _t("fixed", FIXING, LEARNING),
    _t("validated", VALIDATING, DEPLOYING, deploys_without_approval),
    _t("validated", VALIDATING, AWAITING_APPROVAL, needs_approval),
    _t("validated", VALIDATING, FIXING, tries_next_candidate),
    _t("validated", VALIDATING, LEARNING),
    _t("approve", AWAITING_APPROVAL, DEPLOYING),
    _t("reject", AWAITING_APPROVAL, LEARNING),
    _t("deployed", DEPLOYING, LEARNING, gate_passed),
    _t("deployed", DEPLOYING, ROLLING_BACK),
    _t("abort", DEPLOYING, ROLLING_BACK),
    _t("abort", [DIAGNOSING, FIXING, VALIDATING, AWAITING_APPROVAL], LEARNING),
    _t("rollback", DEPLOYING, ROLLING_BACK, has_deployed),
    _t("rolled_back", ROLLING_BACK, LEARNING),
    _t("learned", LEARNING, IDLE),
    _t("escalate", [INGESTING, DETECTING], IDLE),
    _t("escalate", [DIAGNOSING, FIXING, VALIDATING, AWAITING_APPROVAL], LEARNING),
    _t("escalate", DEPLOYING, ROLLING_BACK),
    _t("escalate", [ROLLING_BACK, LEARNING], FAILED),
    _t("fail", list(LOOP_STATES), FAILED),
    _t("pause", [*LOOP_STATES, FAILED], PAUSED),
    *[_t("resume", PAUSED, s, _resumes_to(s)) for s in (*LOOP_STATES, FAILED)],
]


class _Position:
    """The throwaway model ``transitions`` moves; it lives for one decision."""

    state: str
    trigger: Callable[..., bool]  # bound by transitions when the model is added


def _machine() -> Machine:
    return Machine(
        model=None,
        states=list(STATES),
        transitions=TRANSITIONS,
        initial=IDLE,
        auto_transitions=False,
        send_event=False,
        ignore_invalid_triggers=False,
    )


_MACHINE = _machine()


def next_state(state: str, trigger: str, facts: Facts) -> str:
    """Where ``trigger`` leads from ``state`` given ``facts``; raises IllegalTransition if nowhere."""
    if state not in STATES:
        raise IllegalTransition(f"unknown state {state!r}")
    position = _Position()
    _MACHINE.add_model(position, initial=state)
    try:
        moved = position.trigger(trigger, facts)
    except (MachineError, AttributeError) as exc:
        raise IllegalTransition(
            f"'{trigger}' is not allowed in state '{state}' (allowed: {', '.join(allowed_triggers(state)) or 'none'})"
        ) from exc
    finally:
        _MACHINE.remove_model(position)
    if not moved:
        raise IllegalTransition(
            f"'{trigger}' is not allowed in state '{state}' now: no guard holds"
        )
    return str(position.state)


def allowed_triggers(state: str) -> list[str]:
    """Triggers the table defines for ``state`` (guards may still refuse them)."""
    return sorted(_MACHINE.get_triggers(state))
