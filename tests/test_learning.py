"""What a cycle came to, and how patterns learn from it (counted once per cycle, real database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from states.learn.beats import outcome_of, update_pattern
from states.learn.signatures import confidence_of, signature_of
from storage import repository as repo
from storage.db import Database, open_database
from storage.tables import CycleRow, PatternRow, TransitionRow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SIGNATURE = "api:latency:p95_ms:shop/catalog.py"


def cycle(cycle_id: str = "c1", **facts: Any) -> CycleRow:
    fields: dict[str, Any] = {
        "id": cycle_id,
        "opened_at": NOW,
        "component": "api",
        "category": "latency",
        "metric": "p95_ms",
        "signature": SIGNATURE,
        "summary": {"strategy": "revert_commit", "signature_files": ["shop/catalog.py"]},
        "cause_found": True,
    }
    fields.update(facts)
    return CycleRow(**fields)


def moves(*steps: tuple[str, str]) -> list[TransitionRow]:
    """Transitions as (trigger, dest) pairs."""
    return [
        TransitionRow(cycle_id="c1", source="", dest=dest, trigger=trigger, actor="agent", at=NOW)
        for trigger, dest in steps
    ]


# --- outcome_of -------------------------------------------------------------------------------------


def test_a_passed_gate_is_resolved() -> None:
    assert outcome_of(cycle(gate_passed=True), moves(("deployed", "learning")), "auto") == (
        "resolved"
    )


def test_a_gate_that_failed_and_rolled_back_is_rolled_back() -> None:
    history = moves(("deployed", "rolling_back"), ("rolled_back", "learning"))
    assert outcome_of(cycle(gate_passed=False), history, "auto") == "rolled_back"


@pytest.mark.parametrize("trigger", ["abort", "rollback"])
def test_an_operator_stopping_a_rollout_is_aborted(trigger: str) -> None:
    history = moves((trigger, "rolling_back"), ("rolled_back", "learning"))
    assert outcome_of(cycle(), history, "auto") == "aborted"


def test_an_escalated_rollout_that_rolled_back_counts_as_rolled_back() -> None:
    history = moves(("escalate", "rolling_back"), ("rolled_back", "learning"))
    assert outcome_of(cycle(escalated=True), history, "auto") == "rolled_back"


def test_a_rejected_fix_is_rejected() -> None:
    assert outcome_of(cycle(validation_passed=True), moves(("reject", "learning")), "approve") == (
        "rejected"
    )


def test_an_abort_before_deploying_is_aborted() -> None:
    assert outcome_of(cycle(), moves(("abort", "learning")), "auto") == "aborted"


def test_an_escalated_cycle_is_escalated() -> None:
    assert outcome_of(cycle(escalated=True), moves(("escalate", "learning")), "auto") == (
        "escalated"
    )


def test_a_validated_fix_under_observe_autonomy_is_proposed() -> None:
    history = moves(("validated", "learning"))
    assert outcome_of(cycle(validation_passed=True), history, "observe") == "proposed"
    assert outcome_of(cycle(validation_passed=True), history, "auto") == "no_fix"


def test_a_cycle_that_found_no_cause_is_inconclusive() -> None:
    assert outcome_of(cycle(cause_found=False), moves(("diagnosed", "learning")), "auto") == (
        "inconclusive"
    )


def test_a_cause_without_a_working_fix_is_no_fix() -> None:
    assert outcome_of(cycle(), moves(("validated", "learning")), "auto") == "no_fix"


def test_a_passed_gate_wins_over_every_other_rule() -> None:
    history = moves(("reject", "learning"), ("abort", "learning"))
    assert outcome_of(cycle(gate_passed=True, escalated=True), history, "observe") == "resolved"


# --- confidence --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "failures", "confidence"),
    [(0, 0, 0.5), (1, 0, 0.6667), (2, 0, 0.75), (0, 1, 0.3333), (1, 1, 0.5), (3, 1, 0.6667)],
)
def test_confidence_is_the_posterior_mean_of_success(
    successes: int, failures: int, confidence: float
) -> None:
    assert confidence_of(successes, failures) == confidence


def test_two_clean_successes_reach_the_default_approval_threshold() -> None:
    assert confidence_of(1, 0) < 0.75 <= confidence_of(2, 0)


def test_a_signature_is_readable_and_independent_of_file_order() -> None:
    assert signature_of("api", "latency", "p95_ms", ["b.py", "a.py", "b.py"]) == (
        "api:latency:p95_ms:a.py,b.py"
    )


# --- update_pattern on a real database -------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "selfheal.db")
    yield database
    database.dispose()


def learn(db: Database, row: CycleRow, outcome: str, at: datetime = NOW) -> PatternRow | None:
    def work(session: repo.Session) -> PatternRow | None:
        stored = session.get(CycleRow, row.id)
        if stored is None:
            session.add(row)
            session.flush()
            stored = row
        return update_pattern(session, stored, outcome, at)

    return db.transact(work)


def stored_pattern(db: Database) -> PatternRow:
    found = db.query(lambda s: repo.pattern(s, SIGNATURE))
    assert found is not None
    return found


def test_a_first_success_creates_the_pattern(db: Database) -> None:
    learn(db, cycle("c1"), "resolved")

    pattern = stored_pattern(db)
    assert (pattern.successes, pattern.failures, pattern.confidence) == (1, 0, 0.6667)
    assert (pattern.strategy, pattern.files) == ("revert_commit", ["shop/catalog.py"])
    assert pattern.last_cycle_id == "c1"


def test_the_same_cycle_is_counted_only_once(db: Database) -> None:
    learn(db, cycle("c1"), "resolved")
    learn(db, cycle("c1"), "resolved", NOW + timedelta(minutes=5))

    pattern = stored_pattern(db)
    assert (pattern.successes, pattern.failures) == (1, 0)
    assert pattern.updated_at == NOW


def test_two_successful_cycles_give_075(db: Database) -> None:
    learn(db, cycle("c1"), "resolved")
    learn(db, cycle("c2"), "resolved")

    assert stored_pattern(db).confidence == 0.75


def test_a_failure_after_a_success_lowers_confidence(db: Database) -> None:
    learn(db, cycle("c1"), "resolved")
    before = stored_pattern(db).confidence

    learn(db, cycle("c2"), "rolled_back")

    pattern = stored_pattern(db)
    assert (pattern.successes, pattern.failures) == (1, 1)
    assert pattern.confidence < before
    assert pattern.confidence == 0.5


@pytest.mark.parametrize(
    "outcome", ["escalated", "aborted", "rejected", "proposed", "inconclusive"]
)
def test_outcomes_that_say_nothing_about_the_strategy_teach_nothing(
    db: Database, outcome: str
) -> None:
    assert learn(db, cycle("c1"), outcome) is None
    assert db.query(repo.patterns) == []


def test_a_cycle_without_a_signature_or_strategy_teaches_nothing(db: Database) -> None:
    assert learn(db, cycle("c1", signature=""), "resolved") is None
    assert learn(db, cycle("c2", summary={}), "resolved") is None
    assert db.query(repo.patterns) == []


def test_a_strategy_that_never_worked_is_replaced_by_one_that_did(db: Database) -> None:
    learn(db, cycle("c1"), "no_fix")
    assert stored_pattern(db).failures == 1

    redeploy = {"strategy": "redeploy_version", "signature_files": ["shop/catalog.py"]}
    learn(db, cycle("c2", summary=redeploy), "resolved")

    pattern = stored_pattern(db)
    assert pattern.strategy == "redeploy_version"
    assert (pattern.successes, pattern.failures) == (1, 1)
