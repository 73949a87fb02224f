"""The healing loop's transition table: every row, every guard branch, and what is refused."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import pytest

from states import machine
from states.machine import Facts, IllegalTransition, next_state

CYCLE_WORK = (
    machine.DIAGNOSING,
    machine.FIXING,
    machine.VALIDATING,
    machine.AWAITING_APPROVAL,
)
VALIDATED_AUTO = Facts(validation_passed=True, autonomy="auto")


# --- the straight path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "trigger", "dest"),
    [
        (machine.IDLE, "poll", machine.INGESTING),
        (machine.INGESTING, "ingested", machine.DETECTING),
        (machine.AWAITING_APPROVAL, "approve", machine.DEPLOYING),
        (machine.AWAITING_APPROVAL, "reject", machine.LEARNING),
        (machine.ROLLING_BACK, "rolled_back", machine.LEARNING),
        (machine.LEARNING, "learned", machine.IDLE),
    ],
)
def test_unguarded_rows_always_lead_to_their_destination(
    state: str, trigger: str, dest: str
) -> None:
    assert next_state(state, trigger, Facts()) == dest


# --- detected -------------------------------------------------------------------


def test_an_actionable_anomaly_outside_cooldown_with_budget_opens_diagnosis() -> None:
    facts = Facts(actionable=True, in_cooldown=False, budget_left=True)
    assert next_state(machine.DETECTING, "detected", facts) == machine.DIAGNOSING


@pytest.mark.parametrize(
    "facts",
    [
        Facts(actionable=False),
        Facts(actionable=True, in_cooldown=True),
        Facts(actionable=True, budget_left=False),
    ],
    ids=["not actionable", "in cooldown", "budget spent"],
)
def test_detection_returns_to_idle_when_no_incident_may_open(facts: Facts) -> None:
    assert next_state(machine.DETECTING, "detected", facts) == machine.IDLE


# --- diagnosed and fixed -----------------------------------------------------------


def test_a_found_cause_moves_diagnosis_on_to_fixing() -> None:
    assert next_state(machine.DIAGNOSING, "diagnosed", Facts(cause_found=True)) == machine.FIXING


def test_diagnosis_without_a_cause_goes_straight_to_learning() -> None:
    assert next_state(machine.DIAGNOSING, "diagnosed", Facts()) == machine.LEARNING


def test_a_ready_candidate_moves_fixing_on_to_validation() -> None:
    assert next_state(machine.FIXING, "fixed", Facts(candidate_ready=True)) == machine.VALIDATING


def test_fixing_without_a_candidate_goes_to_learning() -> None:
    assert next_state(machine.FIXING, "fixed", Facts()) == machine.LEARNING


# --- validated --------------------------------------------------------------------


def test_auto_autonomy_deploys_a_validated_fix() -> None:
    assert next_state(machine.VALIDATING, "validated", VALIDATED_AUTO) == machine.DEPLOYING


def test_approve_autonomy_waits_for_an_operator() -> None:
    facts = Facts(validation_passed=True, autonomy="approve")
    assert next_state(machine.VALIDATING, "validated", facts) == machine.AWAITING_APPROVAL


def test_a_confident_pattern_lifts_the_approval_requirement() -> None:
    facts = Facts(validation_passed=True, autonomy="approve", pattern_confident=True)
    assert next_state(machine.VALIDATING, "validated", facts) == machine.DEPLOYING


def test_observe_autonomy_never_deploys_even_a_confident_fix() -> None:
    facts = Facts(validation_passed=True, autonomy="observe", pattern_confident=True)
    assert next_state(machine.VALIDATING, "validated", facts) == machine.LEARNING


def test_a_failed_validation_tries_the_next_candidate_when_one_is_left() -> None:
    facts = Facts(validation_passed=False, next_candidate_left=True, autonomy="auto")
    assert next_state(machine.VALIDATING, "validated", facts) == machine.FIXING


def test_a_failed_validation_with_no_candidate_left_goes_to_learning() -> None:
    facts = Facts(validation_passed=False, next_candidate_left=False, autonomy="auto")
    assert next_state(machine.VALIDATING, "validated", facts) == machine.LEARNING


def test_a_passed_validation_never_tries_another_candidate() -> None:
    facts = replace(VALIDATED_AUTO, autonomy="observe", next_candidate_left=True)
    assert next_state(machine.VALIDATING, "validated", facts) == machine.LEARNING


# --- deployed, abort, rollback -----------------------------------------------------------


def test_a_rollout_whose_gates_passed_goes_to_learning() -> None:
    assert next_state(machine.DEPLOYING, "deployed", Facts(gate_passed=True)) == machine.LEARNING


def test_a_rollout_whose_gate_failed_rolls_back() -> None:
    assert next_state(machine.DEPLOYING, "deployed", Facts()) == machine.ROLLING_BACK


def test_abort_during_a_rollout_rolls_back() -> None:
    assert next_state(machine.DEPLOYING, "abort", Facts()) == machine.ROLLING_BACK


@pytest.mark.parametrize("state", CYCLE_WORK)
def test_abort_before_deploying_ends_the_cycle_in_learning(state: str) -> None:
    assert next_state(state, "abort", Facts()) == machine.LEARNING


def test_an_operator_rollback_needs_something_deployed() -> None:
    facts = Facts(deployed_anything=True)
    assert next_state(machine.DEPLOYING, "rollback", facts) == machine.ROLLING_BACK
    with pytest.raises(IllegalTransition, match="no guard holds"):
        next_state(machine.DEPLOYING, "rollback", Facts(deployed_anything=False))


# --- escalate and fail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "dest"),
    [
        (machine.INGESTING, machine.IDLE),
        (machine.DETECTING, machine.IDLE),
        *[(s, machine.LEARNING) for s in CYCLE_WORK],
        (machine.DEPLOYING, machine.ROLLING_BACK),
        (machine.ROLLING_BACK, machine.FAILED),
        (machine.LEARNING, machine.FAILED),
    ],
)
def test_escalation_leaves_each_phase_for_the_safest_next_place(state: str, dest: str) -> None:
    assert next_state(state, "escalate", Facts()) == dest


@pytest.mark.parametrize("state", machine.LOOP_STATES)
def test_every_loop_state_can_fail(state: str) -> None:
    assert next_state(state, "fail", Facts()) == machine.FAILED


# --- pause and resume --------------------------------------------------------------------


@pytest.mark.parametrize("state", [*machine.LOOP_STATES, machine.FAILED])
def test_pause_then_resume_returns_to_the_state_paused_from(state: str) -> None:
    assert next_state(state, "pause", Facts()) == machine.PAUSED
    assert next_state(machine.PAUSED, "resume", Facts(paused_from=state)) == state


def test_resume_without_a_remembered_state_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="no guard holds"):
        next_state(machine.PAUSED, "resume", Facts(paused_from=None))


def test_a_paused_machine_cannot_be_paused_again() -> None:
    with pytest.raises(IllegalTransition, match=r"allowed: resume\)"):
        next_state(machine.PAUSED, "pause", Facts())


# --- refusals ------------------------------------------------------------------------------


def test_a_trigger_from_the_wrong_state_names_the_allowed_triggers() -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_state(machine.IDLE, "approve", Facts())
    message = str(caught.value)
    assert "'approve' is not allowed in state 'idle'" in message
    assert "allowed: fail, pause, poll" in message


def test_an_unknown_trigger_is_refused_with_the_allowed_triggers() -> None:
    with pytest.raises(
        IllegalTransition, match=r"'dance'.*allowed: escalate, fail, learned, pause"
    ):
        next_state(machine.LEARNING, "dance", Facts())


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="unknown state 'sleeping'"):
        next_state("sleeping", "poll", Facts())


def test_deciding_leaves_no_model_behind_on_the_shared_machine() -> None:
    before = len(machine._MACHINE.models)
    next_state(machine.IDLE, "poll", Facts())
    with pytest.raises(IllegalTransition):
        next_state(machine.IDLE, "approve", Facts())
    assert len(machine._MACHINE.models) == before


# --- the table as a whole -------------------------------------------------------------------


def _facts_variants() -> list[Facts]:
    """Facts that make each guard hold at least once."""
    base = [
        Facts(),
        Facts(actionable=True),
        Facts(cause_found=True, candidate_ready=True),
        VALIDATED_AUTO,
        Facts(validation_passed=True, autonomy="approve"),
        Facts(next_candidate_left=True),
        Facts(gate_passed=True, deployed_anything=True),
    ]
    return base + [Facts(paused_from=s) for s in machine.STATES]


def test_every_state_is_reachable_from_idle() -> None:
    seen = {machine.IDLE}
    queue = deque([machine.IDLE])
    while queue:
        state = queue.popleft()
        for trigger in machine.allowed_triggers(state):
            for facts in _facts_variants():
                try:
                    dest = next_state(state, trigger, facts)
                except IllegalTransition:
                    continue
                if dest not in seen:
                    seen.add(dest)
                    queue.append(dest)
    assert seen == set(machine.STATES)


def test_every_phase_with_beats_accepts_its_completion_trigger() -> None:
    for phase in machine.PHASES_WITH_BEATS:
        assert machine.COMPLETION_TRIGGER[phase] in machine.allowed_triggers(phase)


def test_the_operator_triggers_are_all_defined_somewhere() -> None:
    defined = {row["trigger"] for row in machine.TRANSITIONS}
    assert set(machine.OPERATOR_TRIGGERS) <= defined
