"""What the operator commands show: status, history, one cycle, patterns.

Each report is built as plain data first (that is the ``--json`` output),
then rendered as text, so the two can never disagree.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from states.detect.budget import describe, stored_report
from states.progression import DONE
from states.settings import Settings
from storage import repository as repo
from storage import window_store
from storage.db import Database
from storage.repository import Session
from storage.tables import CycleRow

STATUS_TRANSITIONS = 10


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _current_beat(session: Session, entry_id: int) -> dict[str, Any] | None:
    runs = sorted(repo.beat_runs(session, entry_id).values(), key=lambda r: r.id or 0)
    pending = [r for r in runs if r.status not in DONE]
    if not pending:
        return None
    run = pending[0]
    return {
        "beat": run.beat_id,
        "status": run.status,
        "attempts": run.attempts,
        "not_before": _iso(run.not_before),
        "error": run.error or None,
        "wait_reason": run.output.get("wait_reason"),
    }


def _budget(session: Session, settings: Settings, component: str, now: datetime) -> Any:
    report = stored_report(session, settings, component, now)
    return describe(report) if report else None


def status(db: Database, settings: Settings, now: datetime) -> dict[str, Any]:
    """The agent's position, health and error budget per component, sources, transitions."""

    def build(session: Session) -> dict[str, Any]:
        state = repo.agent_state(session, now)
        cycle = repo.cycle(session, state.cycle_id) if state.cycle_id else None
        return {
            "state": state.state,
            "paused": state.state == "paused",
            "paused_from": state.paused_from,
            "cycle": _cycle_brief(cycle) if cycle else None,
            "current_beat": _current_beat(session, state.entry_id),
            "components": {
                name: {
                    "error_budget": _budget(session, settings, name, now),
                    "window_start": _iso(w.start),
                    "health": w.health,
                    "count": w.count,
                    "error_rate": round(w.error_rate, 4),
                    "p95_ms": w.p95,
                }
                for name, w in sorted(window_store.latest_windows(session).items())
            },
            "anomalies": [
                {
                    "fingerprint": a.fingerprint,
                    "severity": a.severity,
                    "actionable": a.actionable,
                    "windows": a.consecutive,
                    "cycle_id": a.cycle_id,
                }
                for a in repo.open_anomalies(session)
            ],
            "sources": {
                c.key: {
                    "lines": c.lines,
                    "rejected": c.rejected,
                    "offset": c.offset,
                    "updated_at": _iso(c.updated_at),
                }
                for c in window_store.cursors(session).values()
            },
            "queued_commands": [
                {"id": c.id, "verb": c.verb} for c in repo.queued_commands(session)
            ],
            "transitions": [
                _transition(t) for t in repo.recent_transitions(session, STATUS_TRANSITIONS)
            ],
        }

    return db.query(build)


def _transition(t: Any) -> dict[str, Any]:
    return {
        "at": _iso(t.at),
        "source": t.source,
        "dest": t.dest,
        "trigger": t.trigger,
        "actor": t.actor,
        "reason": t.reason,
        "cycle_id": t.cycle_id,
    }


def _cycle_brief(c: CycleRow) -> dict[str, Any]:
    return {
        "id": c.id,
        "component": c.component,
        "category": c.category,
        "metric": c.metric,
        "opened_at": _iso(c.opened_at),
        "closed_at": _iso(c.closed_at),
        "outcome": c.outcome,
        "suspect_commit": c.summary.get("suspect_commit"),
        "root_component": c.summary.get("root_component"),
        "file": c.summary.get("file"),
        "line": c.summary.get("line"),
        "confidence": c.confidence,
        "strategy": c.summary.get("strategy"),
        "escalated": c.escalated,
        "escalation_reason": c.escalation_reason or None,
    }


def history(db: Database, limit: int) -> list[dict[str, Any]]:
    """The newest cycles first."""
    return db.query(lambda s: [_cycle_brief(c) for c in repo.cycles(s, limit)])


def show(db: Database, prefix: str) -> dict[str, Any] | None:
    """One cycle: facts, transitions, beats and artifacts (with their content)."""

    def build(session: Session) -> dict[str, Any] | None:
        cycle = repo.find_cycle(session, prefix)
        if cycle is None:
            return None
        artifacts = {}
        for a in repo.artifacts(session, cycle.id):
            path = Path(a.path)
            artifacts[a.kind] = {"path": a.path, "sha256": a.sha256, "size": a.size}
            if path.suffix == ".json" and path.exists():
                artifacts[a.kind]["content"] = json.loads(path.read_text())
        return {
            "cycle": {
                **_cycle_brief(cycle),
                "summary": cycle.summary,
                "approved_by": cycle.approved_by,
            },
            "transitions": [_transition(t) for t in repo.cycle_transitions(session, cycle.id)],
            "beats": [
                {
                    "phase": b.phase,
                    "beat": b.beat_id,
                    "status": b.status,
                    "attempts": b.attempts,
                    "started_at": _iso(b.started_at),
                    "finished_at": _iso(b.finished_at),
                    "error": b.error or None,
                }
                for b in repo.cycle_beat_runs(session, cycle.id)
            ],
            "artifacts": artifacts,
        }

    return db.query(build)


def patterns(db: Database) -> list[dict[str, Any]]:
    """The pattern library, most trusted first."""
    return db.query(
        lambda s: [
            {
                "signature": p.signature,
                "strategy": p.strategy,
                "successes": p.successes,
                "failures": p.failures,
                "confidence": p.confidence,
                "last_cycle_id": p.last_cycle_id,
            }
            for p in repo.patterns(s)
        ]
    )


# --- text rendering -------------------------------------------------------------


def render_status(data: dict[str, Any]) -> str:
    lines = [
        f"state: {data['state']}"
        + (f" (paused in {data['paused_from']})" if data["paused"] else "")
    ]
    if data["cycle"]:
        c = data["cycle"]
        lines.append(f"cycle: {c['id']} {c['component']} {c['category']}/{c['metric']}")
        if c["suspect_commit"]:
            root = c["root_component"]
            behind = f" in {root}" if root and root != c["component"] else ""
            where = f"{c['suspect_commit'][:12]} {c['file']}:{c['line']}"
            lines.append(f"  suspect{behind}: {where} (confidence {c['confidence']:.2f})")
    if data["current_beat"]:
        b = data["current_beat"]
        extra = f" until {b['not_before']} ({b['wait_reason']})" if b["not_before"] else ""
        lines.append(f"beat: {b['beat']} {b['status']} attempt {b['attempts']}{extra}")
    if data["components"]:
        lines.append("components:")
        for name, h in data["components"].items():
            budget = h["error_budget"]
            left = f"  budget left {budget['budget_remaining']:.0%}" if budget else ""
            burning = " BURNING" if budget and budget["alerting"] else ""
            lines.append(
                f"  {name:<14} health {h['health']!s:>6}  p95 {h['p95_ms']!s:>8} ms  "
                f"errors {h['error_rate']:.2%}  n={h['count']}{left}{burning}"
            )
    for a in data["anomalies"]:
        lines.append(
            f"anomaly: {a['fingerprint']} {a['severity']} {a['windows']} window(s)"
            + (" actionable" if a["actionable"] else "")
        )
    for key, s in data["sources"].items():
        rejected = ", ".join(f"{k}={v}" for k, v in s["rejected"].items()) or "none"
        lines.append(f"source {key}: {s['lines']} lines, rejected: {rejected}")
    lines.append("recent transitions:")
    for t in data["transitions"]:
        lines.append(
            f"  {t['at']}  {t['source']} -> {t['dest']}  [{t['trigger']} by {t['actor']}] {t['reason']}"
        )
    return "\n".join(lines)


def render_history(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no cycles yet"
    return "\n".join(
        f"{r['id']}  {r['component']:<10} {r['outcome'] or 'open':<12} suspect {str(r['suspect_commit'])[:12]}"
        for r in rows
    )


def render_patterns(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no patterns learned yet"
    return "\n".join(
        f"{r['confidence']:.2f}  {r['strategy']:<16} +{r['successes']}/-{r['failures']}  {r['signature']}"
        for r in rows
    )
