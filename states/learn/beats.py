"""Phase 7 beats: update the pattern for the cycle's signature, export, close the cycle.

A pattern is updated at most once per cycle (``last_cycle_id``), so a beat
re-run after a crash cannot count the same outcome twice.
"""

from __future__ import annotations

from typing import Any

from states.artifacts import PatternEntry, PatternsArtifact
from states.context import BeatContext, BeatResult
from states.learn.signatures import confidence_of
from states.registry import beat
from storage import repository as repo
from storage.artifacts import write_atomically
from storage.repository import Session
from storage.tables import CycleRow, PatternRow, TransitionRow


def outcome_of(cycle: CycleRow, transitions: list[TransitionRow], autonomy: str) -> str:
    """What the cycle came to, from its persisted facts and transitions (first rule that holds)."""
    triggers = {t.trigger for t in transitions}
    rolled_back = any(t.dest == "rolling_back" for t in transitions)
    rules = (
        (cycle.gate_passed is True, "resolved"),
        (rolled_back and bool(triggers & {"abort", "rollback"}), "aborted"),
        (rolled_back, "rolled_back"),
        ("reject" in triggers, "rejected"),
        ("abort" in triggers, "aborted"),
        (cycle.escalated, "escalated"),
        (cycle.validation_passed and autonomy == "observe", "proposed"),
        (not cycle.cause_found, "inconclusive"),
    )
    return next((name for holds, name in rules if holds), "no_fix")


def _entry(p: PatternRow) -> PatternEntry:
    return PatternEntry(
        signature=p.signature,
        component=p.component,
        category=p.category,
        metric=p.metric,
        files=p.files,
        strategy=p.strategy,
        successes=p.successes,
        failures=p.failures,
        confidence=p.confidence,
    )


def update_pattern(session: Session, cycle: CycleRow, outcome: str, now: Any) -> PatternRow | None:
    """Count this cycle's outcome for its signature and strategy, once."""
    strategy = cycle.summary.get("strategy")
    if not cycle.signature or not strategy or outcome not in ("resolved", "rolled_back", "no_fix"):
        return None
    row = repo.pattern(session, cycle.signature)
    if row is not None and row.last_cycle_id == cycle.id:
        return row
    if row is None or (row.strategy != strategy and outcome == "resolved" and row.successes == 0):
        files = list(cycle.summary.get("signature_files", []))
        row = row or PatternRow(
            signature=cycle.signature,
            component=cycle.component,
            category=cycle.category,
            metric=cycle.metric,
            files=files,
            strategy=strategy,
            updated_at=now,
        )
        row.strategy = strategy
    if outcome == "resolved" and row.strategy == strategy:
        row.successes += 1
    else:
        row.failures += 1
    row.confidence = confidence_of(row.successes, row.failures)
    row.last_cycle_id, row.updated_at = cycle.id, now
    session.add(row)
    return row


@beat("learn.record_pattern")
def record_pattern(ctx: BeatContext) -> BeatResult:
    """Decide the outcome and update the pattern library."""
    cycle_id = ctx.require_cycle()
    now = ctx.clock.now()

    def learn(session: Session) -> dict[str, Any]:
        cycle = repo.cycle(session, cycle_id)
        outcome = outcome_of(
            cycle, repo.cycle_transitions(session, cycle_id), ctx.settings.agent.autonomy
        )
        row = update_pattern(session, cycle, outcome, now)
        return {
            "outcome": outcome,
            "pattern": row.signature if row else None,
            "confidence": row.confidence if row else None,
        }

    result = ctx.db.transact(learn)
    return BeatResult(output=result, cycle_updates={"summary": {"outcome": result["outcome"]}})


@beat("learn.export_patterns")
def export_patterns(ctx: BeatContext) -> BeatResult:
    """patterns.json for the cycle, and the library at ``<data_dir>/patterns.json``."""
    cycle_id = ctx.require_cycle()
    learned = ctx.outputs["record-pattern"]

    def read(session: Session) -> tuple[list[PatternRow], PatternRow | None]:
        rows = repo.patterns(session)
        return rows, (repo.pattern(session, learned["pattern"]) if learned["pattern"] else None)

    rows, mine = ctx.db.query(read)
    artifact = PatternsArtifact(
        cycle_id=cycle_id,
        outcome=learned["outcome"],
        learned=_entry(mine) if mine else None,
        library=[_entry(r) for r in rows],
    )
    ctx.artifacts.write_model(cycle_id, "patterns", artifact)
    library = PatternsArtifact(
        cycle_id=cycle_id, outcome=learned["outcome"], learned=None, library=artifact.library
    )
    write_atomically(
        ctx.data_dir / "patterns.json", library.model_dump_json(indent=2).encode() + b"\n"
    )
    return BeatResult(output={"patterns": len(rows)})


@beat("learn.close_cycle")
def close_cycle(ctx: BeatContext) -> BeatResult:
    """Close the cycle and the anomalies it handled."""
    cycle_id = ctx.require_cycle()
    now = ctx.clock.now()
    outcome = ctx.outputs["record-pattern"]["outcome"]

    def close(session: Session) -> int:
        cycle = repo.cycle(session, cycle_id)
        cycle.closed_at, cycle.outcome = now, outcome
        session.add(cycle)
        anomalies = [a for a in repo.cycle_anomalies(session, cycle_id) if a.status == "open"]
        for anomaly in anomalies:
            anomaly.status, anomaly.closed_at = "closed", now
            session.add(anomaly)
        return len(anomalies)

    return BeatResult(output={"outcome": outcome, "anomalies_closed": ctx.db.transact(close)})
