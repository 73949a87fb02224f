"""An anomaly's life across windows: open, persist, heal, close, re-open (flap control).

An anomaly opens on its first anomalous window and becomes actionable after
``persist_windows`` anomalous windows; it closes only after ``clear_windows``
judged healthy windows in a row (hysteresis), so a flapping metric stays one
anomaly. When the same fingerprint turns anomalous again after it closed, the
closed anomaly re-opens instead of a new one being made, if it still belongs
to a cycle in progress (it is the same incident) or, outside any cycle, if it
closed at most ``reopen_windows`` windows ago. A re-opened anomaly keeps its
onset and cycle and must persist again before it is actionable, so neither a
flapping metric nor a sporadic blip opens a second incident.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from states.detect.judgement import SEVERITY_ORDER, Finding
from states.settings import Settings
from storage import repository as repo
from storage.repository import Session
from storage.tables import AnomalyRow, CycleRow, WindowRow


def reopenable(
    session: Session, settings: Settings, fingerprint: str, at: datetime
) -> AnomalyRow | None:
    """The closed anomaly of ``fingerprint`` that a finding at ``at`` re-opens, if any."""
    last = repo.last_closed_anomaly(session, fingerprint)
    if last is None or last.closed_at is None:
        return None
    if last.cycle_id is not None:
        cycle = session.get(CycleRow, last.cycle_id)
        return last if cycle is not None and cycle.closed_at is None else None
    window = timedelta(seconds=settings.telemetry.window_s)
    return last if at - last.closed_at <= window * settings.detect.reopen_windows else None


def _new_row(finding: Finding, window: WindowRow) -> AnomalyRow:
    return AnomalyRow(
        fingerprint=finding.fingerprint,
        component=finding.component,
        metric=finding.metric,
        detector=finding.detector,
        category=finding.category,
        severity=finding.severity,
        onset=finding.onset or window.start,
        last_seen=window.start,
    )


def _reopen(row: AnomalyRow) -> AnomalyRow:
    row.status, row.closed_at = "open", None
    row.consecutive = 0  # counted up to 1 below: it must persist again
    row.evidence = {**row.evidence, "reopened": int(row.evidence.get("reopened", 0)) + 1}
    return row


def open_or_update(
    session: Session, settings: Settings, finding: Finding, window: WindowRow
) -> AnomalyRow:
    """Record one finding of ``window``: update its open anomaly, re-open it, or open one."""
    current = [
        a
        for a in repo.open_anomalies(session, finding.component)
        if a.fingerprint == finding.fingerprint
    ]
    if current:
        row = current[0]
    else:
        closed = reopenable(session, settings, finding.fingerprint, window.start)
        row = _reopen(closed) if closed is not None else _new_row(finding, window)
    if row.id is not None:
        row.consecutive += 1
        row.healthy_streak = 0
        row.last_seen = window.start
        if SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER.get(row.severity, 0):
            row.severity = finding.severity
    row.value, row.threshold, row.baseline = finding.value, finding.threshold, finding.baseline
    row.score = max(row.score, finding.score)
    row.detector = finding.detector
    row.evidence = {
        **({"reopened": row.evidence["reopened"]} if "reopened" in row.evidence else {}),
        "window_start": window.start.isoformat(),
        "count": window.count,
        "detector": finding.detector,
        "excess": round(finding.excess, 3),
        **finding.evidence,
    }
    row.actionable = row.consecutive >= settings.detect.persist_windows
    session.add(row)
    return row


def heal(
    session: Session,
    settings: Settings,
    component: str,
    seen: set[str],
    at: datetime,
    judged: Callable[[str], bool],
) -> None:
    """Count a healthy window for every open anomaly this window judged and did not see."""
    for row in repo.open_anomalies(session, component):
        if row.fingerprint in seen or not judged(row.metric):
            continue
        row.healthy_streak += 1
        if row.healthy_streak >= settings.detect.clear_windows:
            row.status, row.closed_at = "closed", at
        session.add(row)
